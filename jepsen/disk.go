package jepsen

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Disks: each server's data dir can be a tmpfs of its own (ClusterConfig
// TmpfsMiB), mounted when the cluster is laid out, so that the disk-full
// fault fills exactly one server's disk with a file and frees it by
// removing the file. At the end the mounts' contents are copied to the
// disk below and the tmpfs unmounted, so that data/ keeps the data dirs for
// replay and inspection like the other runs' do.

// FillerName is the file disk-full writes into a data dir.
const FillerName = "jepsen-filler"

// mountTmpfs mounts a tmpfs of mib MiB on dir, owned by uid.
func mountTmpfs(dir string, mib, uid int) error {
	opts := fmt.Sprintf("size=%dm,mode=0755,uid=%d,gid=%d", mib, uid, uid)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", opts, "jepsen-"+filepath.Base(dir), dir).CombinedOutput(); err != nil {
		return fmt.Errorf("mount a tmpfs on %s: %w: %s", dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// unmountAll unmounts the servers' tmpfs data dirs, keeping their contents
// on the disk below; it returns what went wrong.
func (c *Cluster) unmountAll() []string {
	var problems []string
	for _, s := range c.Servers {
		if !s.Tmpfs {
			continue
		}
		if err := unmountKeeping(s.DataDir); err != nil {
			problems = append(problems, err.Error())
		}
		s.Tmpfs = false
	}
	return problems
}

// unmountKeeping copies a mounted dir's contents aside, unmounts it and
// moves the contents back into the (now plain) directory.
func unmountKeeping(dir string) error {
	keep := dir + ".keep"
	if err := os.RemoveAll(keep); err != nil {
		return fmt.Errorf("keep the contents of %s: %w", dir, err)
	}
	if err := os.Mkdir(keep, 0o755); err != nil {
		return fmt.Errorf("keep the contents of %s: %w", dir, err)
	}
	// The filler is no data of the server's: it is not kept.
	_ = os.Remove(filepath.Join(dir, FillerName))
	if out, err := exec.Command("cp", "-a", dir+"/.", keep+"/").CombinedOutput(); err != nil {
		return fmt.Errorf("copy %s before unmounting it: %w: %s", dir, err, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		if out2, err2 := exec.Command("umount", "-l", dir).CombinedOutput(); err2 != nil {
			return fmt.Errorf("unmount %s: %w: %s; lazily: %s", dir, err, strings.TrimSpace(string(out)), strings.TrimSpace(string(out2)))
		}
	}
	ents, err := os.ReadDir(keep)
	if err != nil {
		return fmt.Errorf("move %s back: %w", keep, err)
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(keep, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("move %s back: %w", keep, err)
		}
	}
	if err := os.Remove(keep); err != nil {
		return fmt.Errorf("remove %s: %w", keep, err)
	}
	return nil
}

// CleanupStaleMounts unmounts the tmpfs data dirs a killed run left under
// root/jepsen/results, and returns them.
func CleanupStaleMounts(root string) []string {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	prefix := filepath.Join(root, "jepsen", "results") + "/"
	var stale []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "tmpfs" && strings.HasPrefix(fields[1], prefix) {
			stale = append(stale, fields[1])
		}
	}
	for _, m := range stale {
		_ = exec.Command("umount", "-l", m).Run()
	}
	return stale
}

// FillDisk writes FillerName into dir until its file system has no byte
// left, and returns how many bytes it wrote.
func FillDisk(dir string) (int64, error) {
	path := filepath.Join(dir, FillerName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create the filler: %w", err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	var n int64
	for _, size := range []int{1 << 20, 64 << 10, 4 << 10, 512, 1} {
		for {
			k, err := f.Write(chunk[:size])
			n += int64(k)
			if err == nil {
				continue
			}
			if !errors.Is(err, syscall.ENOSPC) {
				return n, fmt.Errorf("fill %s: %w", dir, err)
			}
			break
		}
	}
	return n, nil
}

// FreeBytes returns the bytes available in dir's file system.
func FreeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// FreeDisk removes the filler of dir.
func FreeDisk(dir string) error {
	if err := os.Remove(filepath.Join(dir, FillerName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the filler: %w", err)
	}
	return nil
}

// wipeDir removes everything inside dir (a data dir, maybe a mount point),
// keeping dir itself.
func wipeDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("wipe %s: %w", dir, err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("wipe %s: %w", dir, err)
		}
	}
	return nil
}
