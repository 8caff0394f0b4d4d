package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// randString returns a string that exercises JSON's escapes.
func randString(r *rand.Rand) string {
	const alphabet = "ab/=_- \"\\\n\t\x01é😀<&>"
	rs := []rune(alphabet)
	var b strings.Builder
	for range r.IntN(8) {
		b.WriteRune(rs[r.IntN(len(rs))])
	}
	return b.String()
}

func randStrings(r *rand.Rand) []string {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	s := make([]string, 1+r.IntN(3))
	for i := range s {
		s[i] = randString(r)
	}
	return s
}

func randConfig(r *rand.Rand) Config {
	c := Config{
		Name: randString(r), Path: "/" + randString(r), Args: randStrings(r), Env: randStrings(r),
		Uid: r.IntN(70000) - 1, Gid: r.IntN(70000), Workdir: randString(r), Hostname: randString(r),
		StopTimeoutSec: r.IntN(30), StopSignal: randString(r), State: randString(r),
	}
	if r.IntN(2) == 0 {
		c.Groups = []int{r.IntN(1000), r.IntN(1000)}
	}
	if r.IntN(2) == 0 {
		c.Rlimits = map[string]uint64{"NOFILE": r.Uint64(), randString(r): uint64(r.IntN(10))}
	}
	for range r.IntN(3) {
		c.Dirs = append(c.Dirs, Dir{Path: randString(r), Mode: r.Uint32(), Uid: r.IntN(100), Gid: r.IntN(100)})
	}
	for range r.IntN(3) {
		c.Mounts = append(c.Mounts, Mount{Source: randString(r), Target: randString(r), Type: randString(r), Options: randString(r)})
	}
	return c
}

// unmarshal is what the init decoded with before (encoding/json).
func unmarshal[T any](b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// TestParseConfigAsJSON: what the host writes (json.Marshal of a Config)
// the init reads as encoding/json does.
func TestParseConfigAsJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		b, err := json.Marshal(randConfig(r))
		if err != nil {
			t.Fatal(err)
		}
		checkConfig(t, b)
	}
	for _, in := range []string{
		`{"PATH":"/x","Uid":3,"NAME":"n"}`, `{"path":"/x","path":"/y"}`, `{"ſtate":"/s","\u212aey":1}`,
		`{"rlimits":{"A":1},"rlimits":{"B":2}}`, `{"rlimits":null}`, `{"dirs":[null,{"mode":4294967295}]}`,
		`{"uid":1.0}`, `{"uid":"1"}`, `{"mode":-1}`, `{"dirs":[{"mode":4294967296}]}`, `{"args":"x"}`,
		`{"groups":[1,null]}`, `{"unknown":[{"x":1}],"path":"/p"}`, `[]`, `null`, `{"path":"/x"} x`,
	} {
		checkConfig(t, []byte(in))
	}
}

// checkConfig: where encoding/json reads a Config, ParseConfig reads the
// same (where json fails, ParseConfig may be stricter or not).
func checkConfig(t *testing.T, b []byte) {
	t.Helper()
	want, wantErr := unmarshal[Config](b)
	got, err := ParseConfig(b)
	if wantErr == nil && (err != nil || !reflect.DeepEqual(got, want)) {
		t.Fatalf("ParseConfig(%s) = %+v, %v; encoding/json gives %+v", b, got, err, want)
	}
}

func FuzzParseConfig(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 10 {
		b, _ := json.Marshal(randConfig(r))
		f.Add(b)
	}
	f.Add([]byte(`{"ſtate":"/s","rlimits":{"A":1},"rlimits":{"B":2}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) <= 4096 {
			checkConfig(t, b)
		}
	})
}

// TestVolumesOverrideAsJSON: the host's encoders write what encoding/json
// reads, and the init's decoders read what encoding/json writes.
func TestVolumesOverrideAsJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		var vs []Volume
		for range r.IntN(3) {
			vs = append(vs, Volume{Serial: randString(r), Target: randString(r), Type: randString(r), ReadOnly: r.IntN(2) == 0, Image: randString(r)})
		}
		enc, err := EncodeVolumes(vs)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(enc)
		viaJSON, err := unmarshal[[]Volume](raw)
		if err != nil || len(vs) > 0 && !reflect.DeepEqual(viaJSON, vs) {
			t.Fatalf("EncodeVolumes(%+v) = %s, encoding/json reads %+v, %v", vs, raw, viaJSON, err)
		}
		marshalled, _ := json.Marshal(vs)
		got, err := DecodeVolumes(base64.RawURLEncoding.EncodeToString(marshalled))
		if err != nil || !reflect.DeepEqual(got, viaJSON) && len(vs) > 0 {
			t.Fatalf("DecodeVolumes(%s) = %+v, %v; want %+v", marshalled, got, err, vs)
		}

		o := Override{Args: randStrings(r), Env: randStrings(r)}
		enc, err = EncodeOverride(o)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ = base64.RawURLEncoding.DecodeString(enc)
		marshalled, _ = json.Marshal(o)
		if !bytes.Equal(raw, marshalled) {
			t.Fatalf("EncodeOverride(%+v) = %s, json.Marshal gives %s", o, raw, marshalled)
		}
		want, _ := unmarshal[Override](marshalled)
		gotO, err := DecodeOverride(enc)
		if err != nil || !reflect.DeepEqual(gotO, want) {
			t.Fatalf("DecodeOverride(%s) = %+v, %v; encoding/json gives %+v", marshalled, gotO, err, want)
		}
	}
}
