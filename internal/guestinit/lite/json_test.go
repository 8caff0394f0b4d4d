package lite

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// fromJSON converts encoding/json's generic value (with UseNumber) to
// ParseJSON's, objects with their members sorted by name.
func fromJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		o := Object{}
		for k, e := range v {
			o = append(o, Member{k, fromJSON(e)})
		}
		return sortObject(o)
	case []any:
		a := []any{}
		for _, e := range v {
			a = append(a, fromJSON(e))
		}
		return a
	case json.Number:
		return Number(v)
	}
	return v
}

// sortObject sorts an Object by name, keeping the last of a repeated name
// (as a Go map does when encoding/json fills it).
func sortObject(o Object) Object {
	last := map[string]any{}
	var names []string
	for _, m := range o {
		if _, ok := last[m.Name]; !ok {
			names = append(names, m.Name)
		}
		last[m.Name] = m.Value
	}
	out := Object{}
	for _, n := range sortedStrings(names) {
		out = append(out, Member{n, normalize(last[n])})
	}
	return out
}

func normalize(v any) any {
	switch v := v.(type) {
	case Object:
		return sortObject(v)
	case []any:
		a := []any{}
		for _, e := range v {
			a = append(a, normalize(e))
		}
		return a
	}
	return v
}

func sortedStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// checkJSON compares ParseJSON with encoding/json on in: both accept it
// with the same value, or both refuse it.
func checkJSON(t *testing.T, in []byte) {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(string(in)))
	d.UseNumber()
	var want any
	wantErr := d.Decode(&want)
	if wantErr == nil && strings.Trim(string(in[d.InputOffset():]), " \t\r\n") != "" {
		wantErr = errTrailing // json.Unmarshal's "invalid character after top-level value"
	}
	got, err := ParseJSON(in)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("ParseJSON(%q) error = %v, encoding/json's %v", in, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(normalize(got), fromJSON(want)) {
		t.Fatalf("ParseJSON(%q) = %#v, encoding/json gives %#v", in, normalize(got), fromJSON(want))
	}
}

var errTrailing = Errorf("trailing data")

var jsonCases = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e-3`, `-12E+2`, `"x"`,
	` {"a" : [1, "b", null, true, {"c": {}}], "d": -0.25 } `,
	`{"a":1,"a":2}`, `"\u00e9\ud83d\ude00\n\t\"\\\/"`, `"\ud800"`, `"\ud800\u0041"`, "\"\xff\"",
	`01`, `1.`, `.5`, `-`, `1e`, `+1`, `[1,]`, `{"a":1,}`, `{"a"}`, `{a:1}`, `"\x"`, "\"a\x01\"",
	`"\u12"`, `[`, `{`, `"`, `tru`, `nul`, `truex`, `1 2`, `[1] x`, ``, `   `, `{"a":[[[]]]}`,
}

func TestParseJSON(t *testing.T) {
	for _, in := range jsonCases {
		checkJSON(t, []byte(in))
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, in := range jsonCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 4096 {
			return
		}
		checkJSON(t, in)
	})
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"uote\\", "\n\t\x00\x1f\x7f", "<&>", "\u2028\u2029", "é😀", "\xff", "\ufffd", "\b\f\r"} {
		b := AppendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("AppendString(%q) = %s: %v", s, b, err)
			continue
		}
		if want, _ := json.Marshal(s); string(b) != string(want) {
			t.Errorf("AppendString(%q) = %s, json.Marshal gives %s", s, b, want)
		}
	}
}
