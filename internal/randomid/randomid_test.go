package randomid

import (
	"encoding/base64"
	"regexp"
	"testing"
)

func TestUUIDAndBase64(t *testing.T) {
	form := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id, err := UUID()
		if err != nil || !form.MatchString(id) || seen[id] {
			t.Fatalf("UUID %q %v (seen before: %v)", id, err, seen[id])
		}
		seen[id] = true
	}
	s, err := Base64(32)
	if b, derr := base64.StdEncoding.DecodeString(s); err != nil || derr != nil || len(b) != 32 {
		t.Fatalf("Base64(32) = %q %v %v", s, err, derr)
	}
}
