package language

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Bounds on what FindMainClass does on the host: the classes come out of
// a sandbox, and a file's size is only what it claims.
const (
	maxClassFiles = 4096
	maxClassBytes = 8 << 20
	// maxEntries bounds the walk: a box has at most this many inodes by
	// default, and its tmpfs caps them anyway.
	maxEntries = 1 << 16
	// A file whose size exceeds its allocated blocks by more than this is
	// sparse: javac writes no such class.
	sparseSlack = 64 << 10
	// maxBinaryName bounds the main class's name on the command line.
	maxBinaryName = 1024
)

// ErrNoMainClass means no compiled class has public static void
// main(String[]).
var ErrNoMainClass = errors.New("no class has a method public static void main(String[])")

// ErrBadBuild means the build holds what javac does not write (a file
// that is not a class file, more classes or bytes than a box holds, a
// main class with a name that is not a Java name): the compile stage did
// more than compile. Errors that match it name files relative to the
// build directory, never a host path: they are the client's to read.
var ErrBadBuild = errors.New("bad build")

type buildError struct{ msg string }

func (e *buildError) Error() string        { return e.msg }
func (e *buildError) Is(target error) bool { return target == ErrBadBuild }

func badBuild(format string, args ...any) error {
	return &buildError{fmt.Sprintf(format, args...)}
}

type fileID struct{ dev, ino uint64 }

// FindMainClass returns the binary name (pkg.Main) of the class to run
// among the .class files under dir: one with public static void
// main(String[]), preferring a class compiled from the entry file, and
// among those the one named like it.
//
// What it reads is bounded by the box, not by what the files claim: at
// most maxBytes in all (the box's size), each inode once (a hard link's
// other names are skipped), only regular files, and neither sparse files
// nor files above a class file's bound (skipped). Links are never
// followed. An error matching ErrNoMainClass or ErrBadBuild is the
// build's fault; another is the host's.
func FindMainClass(dir, entry string, maxBytes int64) (string, error) {
	type candidate struct{ name, source string }
	var found []candidate
	seen := map[fileID]bool{}
	entries, classes, skipped := 0, 0, 0
	budget := maxBytes
	// Every file read is on the box's own file system: a path that leads
	// elsewhere went through a directory swapped for a link.
	var root unix.Stat_t
	if err := unix.Lstat(dir, &root); errors.Is(err, unix.ENOENT) {
		return "", ErrNoMainClass // the compile stage removed its output
	} else if err != nil {
		return "", fmt.Errorf("stat the build: %w", err)
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if entries++; entries > maxEntries {
			return badBuild("the build holds more than %d files", maxEntries)
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(p, ".class") {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat", rel)
		}
		id := fileID{uint64(st.Dev), uint64(st.Ino)}
		if seen[id] || id.dev != uint64(root.Dev) {
			return nil
		}
		seen[id] = true
		if st.Size > maxClassBytes || st.Size > st.Blocks*512+sparseSlack {
			skipped++
			return nil
		}
		if classes++; classes > maxClassFiles {
			return badBuild("the build holds more than %d class files", maxClassFiles)
		}
		if st.Size > budget {
			return badBuild("the class files hold more than %d bytes, the size of the box", maxBytes)
		}
		data, err := readClassFile(p, rel, id, min(budget, maxClassBytes))
		budget -= int64(len(data))
		if err != nil {
			return err
		}
		info, err := parseClass(data)
		if err != nil {
			return badBuild("%s: %v", rel, err)
		}
		if info.hasMain {
			found = append(found, candidate{strings.ReplaceAll(info.name, "/", "."), info.source})
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if len(found) == 0 && skipped > 0 {
		return "", fmt.Errorf("%w (%d sparse or oversized class files were not read)", ErrNoMainClass, skipped)
	}
	if len(found) == 0 {
		return "", ErrNoMainClass
	}
	base := path.Base(entry)
	simple := strings.TrimSuffix(base, path.Ext(base))
	rank := func(c candidate) int {
		r := 0
		if c.source == base {
			r += 2
		}
		if c.name == simple || strings.HasSuffix(c.name, "."+simple) {
			r++
		}
		return r
	}
	sort.SliceStable(found, func(i, j int) bool {
		ri, rj := rank(found[i]), rank(found[j])
		if ri != rj {
			return ri > rj
		}
		return found[i].name < found[j].name
	})
	name := found[0].name
	if !isBinaryName(name) {
		return "", badBuild("the main class's name %.100q is not a Java binary name", name)
	}
	return name, nil
}

// readClassFile reads the regular file at p, which must still be the
// inode id, up to limit bytes: a file found larger changed after it was
// looked at, which is the build's fault. O_NONBLOCK: a FIFO put in its
// place meanwhile must not block.
func readClassFile(p, rel string, id fileID, limit int64) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rel, withoutPath(err))
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || uint64(st.Dev) != id.dev || uint64(st.Ino) != id.ino {
		return nil, badBuild("%s changed while it was read", rel)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return data, fmt.Errorf("read %s: %w", rel, withoutPath(err))
	}
	if int64(len(data)) > limit {
		return data, badBuild("%s changed while it was read", rel)
	}
	return data, nil
}

// withoutPath is err without the host path an fs.PathError carries.
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// isBinaryName reports whether name is a Java binary name (JLS §13.1):
// identifiers joined by dots, as a java command line takes a class. A
// name read from a class file is the compile stage's word; one that is not
// a binary name could be an option to java.
func isBinaryName(name string) bool {
	if name == "" || len(name) > maxBinaryName {
		return false
	}
	for _, part := range strings.Split(name, ".") {
		if part == "" {
			return false
		}
		for i, r := range part {
			switch {
			case r == utf8.RuneError:
				return false
			case unicode.IsLetter(r), unicode.In(r, unicode.Nl, unicode.Sc, unicode.Pc):
			case i > 0 && unicode.In(r, unicode.Nd, unicode.Mn, unicode.Mc):
			default:
				return false
			}
		}
	}
	return true
}

type classInfo struct {
	name    string // internal form: pkg/Main
	source  string // the SourceFile attribute
	hasMain bool
}

var errTruncated = errors.New("truncated class file")

// classReader reads a class file's big-endian fields, failing once past
// its end.
type classReader struct {
	b   []byte
	off int
	err error
}

func (r *classReader) take(n int) []byte {
	if r.err != nil || n < 0 || r.off+n > len(r.b) {
		r.err = errTruncated
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *classReader) u1() int {
	if v := r.take(1); v != nil {
		return int(v[0])
	}
	return 0
}

func (r *classReader) u2() int {
	if v := r.take(2); v != nil {
		return int(binary.BigEndian.Uint16(v))
	}
	return 0
}

func (r *classReader) u4() int {
	if v := r.take(4); v != nil {
		return int(binary.BigEndian.Uint32(v))
	}
	return 0
}

// Constant pool tags and their sizes (JVMS §4.4).
const (
	tagUtf8  = 1
	tagClass = 7
	tagLong  = 5
	tagDbl   = 6
)

var constSize = map[int]int{
	3: 4, 4: 4, 5: 8, 6: 8, 7: 2, 8: 2, 9: 4, 10: 4, 11: 4, 12: 4,
	15: 3, 16: 2, 17: 4, 18: 4, 19: 2, 20: 2,
}

const (
	accPublic = 0x0001
	accStatic = 0x0008
)

// parseClass reads what FindMainClass needs of a class file: its name,
// its source file, and whether it has public static void main(String[]).
func parseClass(b []byte) (classInfo, error) {
	r := &classReader{b: b}
	if r.u4() != 0xCAFEBABE {
		return classInfo{}, errors.New("not a class file")
	}
	r.take(4) // minor, major version
	count := r.u2()
	utf8 := make(map[int]string)
	classes := make(map[int]int)
	for i := 1; i < count && r.err == nil; i++ {
		tag := r.u1()
		switch tag {
		case tagUtf8:
			utf8[i] = string(r.take(r.u2()))
		case tagClass:
			classes[i] = r.u2()
		default:
			size, ok := constSize[tag]
			if !ok {
				return classInfo{}, fmt.Errorf("unknown constant tag %d", tag)
			}
			r.take(size)
			if tag == tagLong || tag == tagDbl {
				i++ // takes two entries
			}
		}
	}
	var info classInfo
	r.take(2) // access flags
	info.name = utf8[classes[r.u2()]]
	r.take(2) // super class
	r.take(2 * r.u2())
	skipMembers := func(check bool) {
		n := r.u2()
		for i := 0; i < n && r.err == nil; i++ {
			flags, name, desc := r.u2(), r.u2(), r.u2()
			if check && flags&(accPublic|accStatic) == accPublic|accStatic &&
				utf8[name] == "main" && utf8[desc] == "([Ljava/lang/String;)V" {
				info.hasMain = true
			}
			attrs := r.u2()
			for j := 0; j < attrs && r.err == nil; j++ {
				r.take(2)
				r.take(r.u4())
			}
		}
	}
	skipMembers(false) // fields
	skipMembers(true)  // methods
	attrs := r.u2()
	for j := 0; j < attrs && r.err == nil; j++ {
		name, length := r.u2(), r.u4()
		if utf8[name] == "SourceFile" && length == 2 {
			info.source = utf8[r.u2()]
			continue
		}
		r.take(length)
	}
	if r.err != nil {
		return classInfo{}, r.err
	}
	if info.name == "" {
		return classInfo{}, errors.New("class file has no name")
	}
	return info, nil
}
