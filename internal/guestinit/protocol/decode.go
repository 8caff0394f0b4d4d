package protocol

import (
	"github.com/bespoke-os/bespoke/internal/guestinit/lite"
)

// The init reads its JSON without encoding/json (package lite says why):
// these decoders give what json.Unmarshal gives for the JSON the host
// writes (decode_test.go checks them against it), with members matched
// by name without regard to case, unknown ones skipped, null a zero value.

// ParseConfig decodes the JSON of a Config.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	v, err := lite.ParseJSON(b)
	if err == nil {
		err = c.decode(v)
	}
	return c, err
}

func (c *Config) decode(v any) error {
	return lite.Members(v, func(name string, v any) error {
		var err error
		switch name {
		case "name":
			c.Name, err = lite.String(v)
		case "path":
			c.Path, err = lite.String(v)
		case "args":
			c.Args, err = lite.Strings(v)
		case "env":
			c.Env, err = lite.Strings(v)
		case "uid":
			c.Uid, err = toInt(v)
		case "gid":
			c.Gid, err = toInt(v)
		case "groups":
			c.Groups, err = toInts(v)
		case "workdir":
			c.Workdir, err = lite.String(v)
		case "hostname":
			c.Hostname, err = lite.String(v)
		case "rlimits":
			c.Rlimits, err = decodeRlimits(c.Rlimits, v)
		case "dirs":
			c.Dirs, err = decodeList(v, (*Dir).decode)
		case "mounts":
			c.Mounts, err = decodeList(v, (*Mount).decode)
		case "stop_timeout_sec":
			c.StopTimeoutSec, err = toInt(v)
		case "stop_signal":
			c.StopSignal, err = lite.String(v)
		case "state":
			c.State, err = lite.String(v)
		}
		return err
	})
}

func (d *Dir) decode(v any) error {
	return lite.Members(v, func(name string, v any) error {
		var err error
		switch name {
		case "path":
			d.Path, err = lite.String(v)
		case "mode":
			var n uint64
			n, err = lite.Uint(v, 32)
			d.Mode = uint32(n)
		case "uid":
			d.Uid, err = toInt(v)
		case "gid":
			d.Gid, err = toInt(v)
		}
		return err
	})
}

func (m *Mount) decode(v any) error {
	return lite.Members(v, func(name string, v any) error {
		var err error
		switch name {
		case "source":
			m.Source, err = lite.String(v)
		case "target":
			m.Target, err = lite.String(v)
		case "type":
			m.Type, err = lite.String(v)
		case "options":
			m.Options, err = lite.String(v)
		}
		return err
	})
}

func (vol *Volume) decode(v any) error {
	return lite.Members(v, func(name string, v any) error {
		var err error
		switch name {
		case "serial":
			vol.Serial, err = lite.String(v)
		case "target":
			vol.Target, err = lite.String(v)
		case "type":
			vol.Type, err = lite.String(v)
		case "ro":
			vol.ReadOnly, err = lite.Bool(v)
		case "image":
			vol.Image, err = lite.String(v)
		}
		return err
	})
}

func (o *Override) decode(v any) error {
	return lite.Members(v, func(name string, v any) error {
		var err error
		switch name {
		case "args":
			o.Args, err = lite.Strings(v)
		case "env":
			o.Env, err = lite.Strings(v)
		}
		return err
	})
}

// decodeList decodes a JSON array of objects.
func decodeList[T any](v any, decode func(*T, any) error) ([]T, error) {
	a, err := lite.Array(v)
	if a == nil {
		return nil, err
	}
	out := make([]T, len(a))
	for i, e := range a {
		if err := decode(&out[i], e); err != nil {
			return nil, lite.Errorf("[%d]: %w", i, err)
		}
	}
	return out, nil
}

// decodeRlimits decodes a JSON object of numbers into m, as json.Unmarshal
// does: into the map there is, null makes it nil.
func decodeRlimits(m map[string]uint64, v any) (map[string]uint64, error) {
	if v == nil {
		return nil, nil
	}
	o, ok := v.(lite.Object)
	if !ok {
		return m, lite.Errorf("want an object")
	}
	if m == nil {
		m = map[string]uint64{}
	}
	for _, e := range o {
		n, err := lite.Uint(e.Value, 64)
		if err != nil {
			return m, lite.Errorf("%s: %w", e.Name, err)
		}
		m[e.Name] = n
	}
	return m, nil
}

func toInt(v any) (int, error) {
	n, err := lite.Int(v, 64)
	return int(n), err
}

func toInts(v any) ([]int, error) {
	a, err := lite.Array(v)
	if a == nil {
		return nil, err
	}
	out := make([]int, len(a))
	for i, e := range a {
		if out[i], err = toInt(e); err != nil {
			return nil, err
		}
	}
	return out, nil
}
