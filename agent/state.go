package agent

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"

	"github.com/ice-run/ice/plugins"
	"github.com/ice-run/ice/plugins/host"
)

var runsBucket = []byte("runs")

// localRun is what the agent persists about a plugin it started, so that a
// restarted agent can reattach to it.
type localRun struct {
	RunID      string          `json:"run_id"`
	Component  string          `json:"component"`
	Epoch      uint64          `json:"epoch"`
	Kind       plugins.Kind    `json:"kind"`
	Attachment host.Attachment `json:"attachment"`
}

// stateDB is the agent's local bbolt file.
type stateDB struct {
	db *bbolt.DB
}

func openState(dir string) (*stateDB, error) {
	path := filepath.Join(dir, "agent.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open agent state %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(runsBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init agent state %s: %w", path, err)
	}
	return &stateDB{db: db}, nil
}

func (s *stateDB) close() error { return s.db.Close() }

// put stores a run durably (bbolt fsyncs on commit).
func (s *stateDB) put(r localRun) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode local run %s: %w", r.RunID, err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(runsBucket).Put([]byte(r.RunID), b)
	}); err != nil {
		return fmt.Errorf("persist local run %s: %w", r.RunID, err)
	}
	return nil
}

func (s *stateDB) delete(id string) error {
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(runsBucket).Delete([]byte(id))
	}); err != nil {
		return fmt.Errorf("forget local run %s: %w", id, err)
	}
	return nil
}

// all returns every persisted run; undecodable records are reported and
// skipped.
func (s *stateDB) all() ([]localRun, []error) {
	var out []localRun
	var errs []error
	_ = s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(runsBucket).ForEach(func(k, v []byte) error {
			var r localRun
			if err := json.Unmarshal(v, &r); err != nil {
				errs = append(errs, fmt.Errorf("decode local run %s: %w", k, err))
				return nil
			}
			out = append(out, r)
			return nil
		})
	})
	return out, errs
}
