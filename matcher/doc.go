// Package matcher enforces Canvas LMS developer-key URL scopes.
//
// (documentation is completed below)
package matcher
