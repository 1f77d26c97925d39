// Package matcher decides whether a Canvas LMS developer-key access token's
// scopes allow a request, the way Canvas's AccessToken#url_scopes_for_method
// does, without regular expressions. It uses the standard library only.
//
// # Semantics
//
// A URL scope is "url:<VERB>|<path>". Canvas turns the path into an
// anchored regex: ":name" becomes [^/]+ (a name runs to the next "/" or
// ")" and may start mid-segment, as in "by_:group"), "*name" becomes .+
// (crossing "/"), "(" / ")" make an optional group, and the implicit format
// suffix (?:\.[^/]+|) is appended. The regex is matched against the
// canonical request path (see Canonicalize: Rails normalize_path, nothing
// decoded). HEAD is checked as GET. "/login/oauth2/token" (exactly, no
// format suffix) is allowed for every method by every Set.
//
// Compile builds a Set whose Match is SOUND (whatever it allows, Canvas's
// regex for the returned scope allows) and otherwise exactly equal to
// Canvas's regexes, except for these deliberate, stricter deviations:
//
//  1. A "." in a scope path is a literal dot, not "any character": the two
//     catalogue scopes ".../bounced_communication_channels.csv" and
//     ".../unconfirmed_communication_channels.csv" do not match
//     ".../bounced_communication_channelsXcsv" as they do in Canvas.
//  2. The newer-Canvas-only rewrite of "/download" to
//     "/(?:download|preview)(?:\.:type)?" is not applied: ".../preview"
//     needs its own scope (and ".../rubrics/preview_rubrics" is not granted
//     by ".../rubrics/download_rubrics").
//  3. Methods are compared exactly: "get" or "head" match nothing (Canvas
//     upper-cases the method first).
//  4. One search is bounded to 16,384 steps and fails closed (denies) when
//     it runs out. Only pathological synthetic scopes with several globs
//     or ambiguous dynamics can reach it; no catalogue scope comes near it
//     (tested with 8 KB paths).
//
// ParseScope refuses, rather than emulates, scope paths that Canvas would
// turn into other regex syntax: the metacharacters + ? [ ] { } ^ $ | and
// "\" anywhere; "%", "#", ";", spaces, control and non-ASCII bytes (they
// can never match a canonical path literally, and refusing "%" makes
// escape case irrelevant); names containing "(", ":" or "*" (Canvas's
// substitutions would produce an unbalanced or different regex, e.g.
// "(/:c(/d))" does not compile in Canvas); empty names; unbalanced
// parentheses; a path not starting with "/"; more than 64 alternatives from
// optional groups; scopes longer than 2,048 bytes. No catalogue scope uses
// any of these. Verbs are GET, POST, PUT, PATCH, DELETE and OPTIONS, upper
// case.
//
// # Canonical paths
//
// Canonicalize applies Rails normalize_path to the escaped path (squeeze
// "/", drop one trailing "/", upper-case hex in escapes, decode nothing)
// and refuses, with a *PathError, what Canvas's stack could read
// differently: a path not starting with "/"; "." and ".." segments, also
// percent-encoded or delimited by %2F ("..%2Fx"); "\" and %5C; ";" and
// %3B; "#" and %23; a raw "?"; raw and encoded control bytes (0x00-0x1F,
// 0x7F); a raw space; raw non-ASCII bytes; "%" without two hex digits; and
// %25 followed by two hex digits. Rails would accept most of these; this
// is deliberate strictness. Upper-casing mixed-case escapes (%aB), which
// Rails leaves alone, cannot change a match (see Canonicalize).
//
// # Data structure
//
// Each scope's optional groups are expanded at compile time into
// alternatives (at most 4 in the catalogue), each a sequence of literal,
// dynamic and glob tokens. The alternatives are inserted into a byte-level
// radix tree, one root per verb: static children are found by their first
// byte and compared by label; a node may also have one dynamic child
// (consumes [^/]+, normally the whole segment; every split point is tried
// only when the continuation can start with a byte other than "/", as for
// "(:x)b") and one glob child (consumes .+; when the glob ends the scope,
// as in every catalogue glob, only the full rest is tried). A node where an
// alternative ends lists its leaf ids; reaching it with an empty rest or a
// format suffix (\.[^/]+) is a match if the Set grants one of the leaves.
// The search is a depth-first backtracking walk that allocates nothing; its
// cost depends on the path and the tree's depth, not on the number of
// scopes.
//
// Memory: the tree for the 1,311 catalogue scopes (2,442 nodes, about
// 620 KB including the parsed scopes and the index) is built once per
// process, lazily, in about 3 ms, and shared by all Sets. A Set is two
// pointers: one to a 21-word bitset of granted catalogue scopes (168
// bytes, allocated only if it grants any) and one to a private tree for the
// URL scopes that are not in the catalogue (only when such scopes are
// used, e.g. with allowUnknown; about 1.4 KB for one such scope). Measured
// by TestBytesPerSet: 192 bytes per additional catalogue-only Set, whether
// it holds 25 or all 1,311 scopes; 100,000 token Sets cost about 19 MB.
// Identical scope lists can also share one *Set through an Interner (or
// Intern), keyed by the sorted, de-duplicated list; entries are held
// weakly, so a Set nobody references any more is collected and its entry
// removed.
//
// Compiling the full catalogue into a Set, once the shared tree exists,
// takes about 20 µs (BenchmarkCompileFull); building the shared tree from
// scratch about 3 ms (BenchmarkBuildCatalogueTrie).
package matcher
