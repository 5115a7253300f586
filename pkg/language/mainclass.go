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

	"golang.org/x/sys/unix"
)

// Bounds on what FindMainClass reads: the classes come out of a sandbox.
const (
	maxClassFiles = 4096
	maxClassBytes = 8 << 20
)

// ErrNoMainClass means no compiled class has public static void
// main(String[]).
var ErrNoMainClass = errors.New("no class has a method public static void main(String[])")

// FindMainClass returns the binary name (pkg.Main) of the class to run
// among the .class files under dir: one with public static void
// main(String[]), preferring a class compiled from the entry file, and
// among those the one named like it. Links are never followed.
func FindMainClass(dir, entry string) (string, error) {
	type candidate struct{ name, source string }
	var found []candidate
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(p, ".class") {
			return nil
		}
		if n++; n > maxClassFiles {
			return fmt.Errorf("more than %d class files", maxClassFiles)
		}
		data, err := readClassFile(p)
		if err != nil {
			return err
		}
		info, err := parseClass(data)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if info.hasMain {
			found = append(found, candidate{strings.ReplaceAll(info.name, "/", "."), info.source})
		}
		return nil
	})
	if err != nil {
		return "", err
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
	return found[0].name, nil
}

func readClassFile(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxClassBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxClassBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, maxClassBytes)
	}
	return data, nil
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
