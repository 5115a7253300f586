package api

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Every field of Limits is walked once, under its JSON key.
func TestLimitFieldsCoverLimits(t *testing.T) {
	typ := reflect.TypeOf(Limits{})
	fields := LimitFields()
	if len(fields) != typ.NumField() {
		t.Fatalf("%d limit fields for the %d fields of Limits", len(fields), typ.NumField())
	}
	for i, f := range fields {
		sf := typ.Field(i)
		if json := sf.Tag.Get("json"); json != f.Name+",omitempty" {
			t.Errorf("field %d: walked as %q, json tag %q", i, f.Name, json)
		}
		if toml := sf.Tag.Get("toml"); toml != f.Name {
			t.Errorf("field %d: walked as %q, toml tag %q", i, f.Name, toml)
		}
		// Copy moves this field and no other.
		var src Limits
		reflect.ValueOf(&src).Elem().Field(i).Set(reflect.ValueOf(int64(7)).Convert(sf.Type))
		var dst Limits
		f.Copy(&dst, src)
		if dst != src || f.Value(dst) != 7 {
			t.Errorf("%s: copied %+v from %+v", f.Name, dst, src)
		}
	}
}

func TestLimitsOver(t *testing.T) {
	def := Limits{MemoryBytes: 128 << 20, CPU: 0.5, WallTimeMS: 5000, CPUTimeMS: 5000, Pids: 64, OutputBytes: 64 << 10}
	got := Limits{CPU: 1, Pids: 8}.Over(def)
	want := def
	want.CPU, want.Pids = 1, 8
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if (Limits{}).Over(def) != def {
		t.Fatal("empty limits did not take every default")
	}
}

func TestMinLimitsPositive(t *testing.T) {
	m := MinLimits()
	for _, f := range LimitFields() {
		if !(f.Value(m) > 0) {
			t.Errorf("minimum %s is %s", f.Name, f.Format(m))
		}
	}
	b, _ := json.Marshal(m)
	var back Limits
	if err := json.Unmarshal(b, &back); err != nil || back != m {
		t.Fatalf("round trip %s: %+v, %v", b, back, err)
	}
}

func TestLimitFieldFormat(t *testing.T) {
	l := Limits{MemoryBytes: 32 << 20, CPU: 0.01, OutputBytes: 1, Pids: 3}
	for _, c := range []struct{ name, format, describe string }{
		{"memory_bytes", "33554432", "33554432 (32 MiB)"},
		{"cpu", "0.01", "0.01"},
		{"output_bytes", "1", "1"},
		{"pids", "3", "3"},
	} {
		for _, f := range LimitFields() {
			if f.Name == c.name {
				if got := f.Format(l); got != c.format {
					t.Errorf("%s: Format %q, want %q", c.name, got, c.format)
				}
				if got := f.Describe(l); got != c.describe {
					t.Errorf("%s: Describe %q, want %q", c.name, got, c.describe)
				}
			}
		}
	}
}
