module github.com/bespoke-os/bespoke

go 1.26

require (
	github.com/google/go-cmp v0.7.0
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/sys v0.38.0
)
