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

// stateOpenTimeout bounds waiting for another process's lock on agent.db.
const stateOpenTimeout = 5 * time.Second

var runsBucket = []byte("runs")

// runRecord is what the agent persists about a plugin it started, so that a
// restarted agent can reattach to it.
type runRecord struct {
	RunID      string          `json:"run_id"`
	Component  string          `json:"component"`
	Epoch      uint64          `json:"epoch"`
	Kind       plugins.Kind    `json:"kind"`
	Attachment host.Attachment `json:"attachment"`
}

// runStore keeps the run records: agent.db (stateDB) in production, a fake
// in tests. Its writes are durable, so they may be slow: only a run's worker
// and the agent's start and stop call it, never the supervisor.
type runStore interface {
	put(r runRecord) error
	delete(id string) error
	all() ([]runRecord, []error)
	close() error
}

// stateDB is the agent's local bbolt file.
type stateDB struct {
	db *bbolt.DB
}

// openState opens (or creates) DIR/agent.db.
func openState(dir string) (*stateDB, error) {
	path := filepath.Join(dir, "agent.db")
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: stateOpenTimeout})
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

func (s *stateDB) close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close agent state: %w", err)
	}
	return nil
}

// put stores a run durably (bbolt fsyncs on commit).
func (s *stateDB) put(r runRecord) error {
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

// delete removes a run's record; a run without one costs no write.
func (s *stateDB) delete(id string) error {
	var present bool
	_ = s.db.View(func(tx *bbolt.Tx) error {
		present = tx.Bucket(runsBucket).Get([]byte(id)) != nil
		return nil
	})
	if !present {
		return nil
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(runsBucket).Delete([]byte(id))
	}); err != nil {
		return fmt.Errorf("forget local run %s: %w", id, err)
	}
	return nil
}

// all returns every persisted run; undecodable records are reported and
// skipped.
func (s *stateDB) all() ([]runRecord, []error) {
	var out []runRecord
	var errs []error
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(runsBucket).ForEach(func(k, v []byte) error {
			var r runRecord
			if err := json.Unmarshal(v, &r); err != nil {
				errs = append(errs, fmt.Errorf("decode local run %s: %w", k, err))
				return nil
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("read local runs: %w", err))
	}
	return out, errs
}
