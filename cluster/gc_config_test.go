package cluster

import (
	"strings"
	"testing"
)

// TestEventRetentionMaxDefaults: the cap defaults to 500,000, follows a
// larger retention count, and may not be set below the count.
func TestEventRetentionMaxDefaults(t *testing.T) {
	for _, tc := range []struct {
		count, max uint64
		want       uint64
		err        string
	}{
		{count: 0, max: 0, want: defaultEventRetentionMax},
		{count: 800_000, max: 0, want: 800_000},
		{count: 100, max: 200, want: 200},
		{count: 300, max: 200, err: "below the event retention count"},
	} {
		c := Config{EventRetentionCount: tc.count, EventRetentionMax: tc.max}
		err := c.gcDefaults()
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("count %d max %d: error %v, want one saying %q", tc.count, tc.max, err, tc.err)
			}
		case err != nil:
			t.Errorf("count %d max %d: %v", tc.count, tc.max, err)
		case c.EventRetentionMax != tc.want:
			t.Errorf("count %d max %d: cap %d, want %d", tc.count, tc.max, c.EventRetentionMax, tc.want)
		}
	}
}
