package image

import (
	"fmt"
	"os"
	"path/filepath"
)

// stagingDir creates a fresh directory beside out, where a new image is
// assembled before it replaces out.
func stagingDir(out string) (string, error) {
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", parent, err)
	}
	return os.MkdirTemp(parent, "."+filepath.Base(out)+".new-")
}

// commitDir replaces out with staged. The previous image, if any, is kept
// until the new one is in place, so that a failure at any point leaves
// either the old image or the new one, never a mix.
func commitDir(staged, out string) error {
	old := ""
	if _, err := os.Stat(out); err == nil {
		old = out + ".old"
		os.RemoveAll(old)
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("moving the previous image aside: %w", err)
		}
	}
	if err := os.Rename(staged, out); err != nil {
		if old != "" {
			os.Rename(old, out)
		}
		return fmt.Errorf("moving the new image into place: %w", err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}
