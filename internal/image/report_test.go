package image

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReportKeys: every key of report.json is snake_case, set by a json
// tag (an untagged field would appear as its Go name, "ProfileBytes").
func TestReportKeys(t *testing.T) {
	key := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type, path string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == reflect.TypeOf(time.Time{}) || seen[typ] {
			return
		}
		seen[typ] = true
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if f.Anonymous && name == "" {
				walk(f.Type, path)
				continue
			}
			if !key.MatchString(name) {
				t.Errorf("report.json key %s.%s (%s): want a snake_case json tag", path, f.Name, typ)
			}
			walk(f.Type, path+"."+name)
		}
	}
	walk(reflect.TypeOf(Report{}), "report")
}
