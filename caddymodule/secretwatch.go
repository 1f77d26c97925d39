package caddymodule

import (
	"os"
	"slices"
	"strings"
	"time"
)

// watchedFile is what a load saw of a file behind a {file.*} secret.
type watchedFile struct {
	path   string
	exists bool
	size   int64
	mod    time.Time
}

func statWatched(path string) watchedFile {
	w := watchedFile{path: path}
	if fi, err := os.Stat(path); err == nil {
		w.exists, w.size, w.mod = true, fi.Size(), fi.ModTime()
	}
	return w
}

// secretFilesChanged reports whether any file differs from what the last
// load saw (appeared, vanished, or a new size or mtime: a rotation by
// rename or by rewriting in place).
func secretFilesChanged(files []watchedFile) bool {
	for _, f := range files {
		if statWatched(f.path) != f {
			return true
		}
	}
	return false
}

// secretWatch resolves the keys file's secrets and records the files
// behind their {file.*} placeholders. Each file is looked at before it is
// read, so a change during the load shows as a change at the next poll.
type secretWatch struct {
	files []watchedFile
}

func (w *secretWatch) resolve(s string) (string, error) {
	for _, path := range filePlaceholders(s) {
		w.files = mergeWatched(w.files, []watchedFile{statWatched(path)})
	}
	return resolveSecret(s)
}

// restat looks at the files again.
func restat(files []watchedFile) []watchedFile {
	out := make([]watchedFile, len(files))
	for i, f := range files {
		out[i] = statWatched(f.path)
	}
	return out
}

// mergeWatched adds more to files, one entry per path (the later wins).
func mergeWatched(files, more []watchedFile) []watchedFile {
	for _, m := range more {
		i := slices.IndexFunc(files, func(f watchedFile) bool { return f.path == m.path })
		if i >= 0 {
			files[i] = m
		} else {
			files = append(files, m)
		}
	}
	return files
}

// filePlaceholders returns the paths named by {file.PATH} placeholders in s.
func filePlaceholders(s string) []string {
	var paths []string
	for {
		i := strings.Index(s, "{file.")
		if i < 0 {
			return paths
		}
		s = s[i+len("{file."):]
		j := strings.IndexByte(s, '}')
		if j < 0 {
			return paths
		}
		if j > 0 {
			paths = append(paths, s[:j])
		}
		s = s[j+1:]
	}
}
