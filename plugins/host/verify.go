package host

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	metrics "github.com/armon/go-metrics"
)

// Verification of a plugin binary before it runs.
//
// go-plugin's SecureConfig hashes the whole binary on every launch (about
// 12 ms of CPU for an 18 MB plugin, paid again by each of many plugins
// started at once). Launch verifies the binary itself instead, and hashes
// it only when the file is not one it already hashed: sums are cached by
// file identity (device, inode, size, modification and status-change
// times, to the nanosecond). FileSHA256, which the agent's catalogue scan
// uses, fills the same cache, and concurrent launches of one binary share a
// single hashing.
//
// The trade-off: a cached sum trusts that a file whose identity is
// unchanged has unchanged contents. Writing to a file, renaming another one
// over it, or setting its times back all update its status-change time
// (ctime), which user space cannot set, so every ordinary way of changing a
// plugin is seen and the binary is hashed again. What is not seen: someone
// who can change the system clock or write the block device, who could do
// as much to the agent itself; and a change made within the timestamp
// granularity of the file system after the last change before hashing,
// which is why the sum of a file changed less than racyWindow before it was
// hashed is not cached (git's "racily clean" rule). Like SecureConfig, the
// binary is executed by path after the check, so a change between the check
// and the exec is not seen either way.

// racyWindow is how recently a file may have changed (before it was hashed)
// for its sum still not to be cached.
var racyWindow = 2 * time.Second

// maxCachedSums bounds the cache; it is emptied when full.
const maxCachedSums = 1024

// fileID is what must stay the same for a cached sum to hold.
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // unix nanos
}

func statID(f *os.File) (fileID, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("stat %s: no device and inode", f.Name())
	}
	return fileID{
		dev: uint64(st.Dev), ino: st.Ino, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
	}, nil
}

// hashing is one hashing of a file that concurrent callers wait for.
type hashing struct {
	done chan struct{}
	sum  [sha256.Size]byte
	err  error
}

var sums = struct {
	sync.Mutex
	cached   map[fileID][sha256.Size]byte
	inflight map[fileID]*hashing
}{cached: map[fileID][sha256.Size]byte{}, inflight: map[fileID]*hashing{}}

// fileSum returns the sha256 of the file at path, from the cache when the
// file is one already hashed, and whether it came from there.
func fileSum(path string) (sum [sha256.Size]byte, cached bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return sum, false, fmt.Errorf("checksum %s: %w", path, err)
	}
	defer f.Close()
	id, err := statID(f)
	if err != nil {
		return sum, false, fmt.Errorf("checksum %s: %w", path, err)
	}
	sums.Lock()
	if sum, ok := sums.cached[id]; ok {
		sums.Unlock()
		metrics.IncrCounter([]string{"ice", "plugin", "verify", "cached"}, 1)
		return sum, true, nil
	}
	if h := sums.inflight[id]; h != nil {
		sums.Unlock()
		<-h.done
		return h.sum, true, h.err
	}
	h := &hashing{done: make(chan struct{})}
	sums.inflight[id] = h
	sums.Unlock()

	h.sum, h.err = hashFile(f, id)
	sums.Lock()
	delete(sums.inflight, id)
	if h.err == nil && !racy(id, time.Now()) {
		if len(sums.cached) >= maxCachedSums {
			clear(sums.cached)
		}
		sums.cached[id] = h.sum
	}
	sums.Unlock()
	close(h.done)
	return h.sum, false, h.err
}

// hashFile hashes f, whose identity was id, and checks that it still is.
func hashFile(f *os.File, id fileID) (sum [sha256.Size]byte, err error) {
	start := time.Now()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, fmt.Errorf("checksum %s: %w", f.Name(), err)
	}
	h.Sum(sum[:0])
	metrics.MeasureSince([]string{"ice", "plugin", "verify", "hash"}, start)
	after, err := statID(f)
	if err != nil {
		return sum, fmt.Errorf("checksum %s: %w", f.Name(), err)
	}
	if after != id {
		return sum, fmt.Errorf("checksum %s: the file changed while it was hashed", f.Name())
	}
	return sum, nil
}

// racy reports whether a file changed too shortly before now for its
// timestamps to tell a later change apart.
func racy(id fileID, now time.Time) bool {
	limit := now.Add(-racyWindow).UnixNano()
	return id.mtime >= limit || id.ctime >= limit
}

// verifyBinary checks that the file at path has sha256 want. It reports
// whether the sum came from the cache.
func verifyBinary(path string, want []byte) (cached bool, err error) {
	sum, cached, err := fileSum(path)
	if err != nil {
		return cached, err
	}
	if subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return cached, fmt.Errorf("sha256 of %s is %s, not %s: %w", path, hex.EncodeToString(sum[:]), hex.EncodeToString(want), ErrChecksumMismatch)
	}
	return cached, nil
}
