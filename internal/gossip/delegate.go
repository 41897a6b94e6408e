package gossip

// Delegate is the memberlist.Delegate of every ICE member: it serves the
// member's metadata and hands user messages (keyring operations and their
// answers, on an encrypted member) to the keyring. ICE has no state to push
// or pull and sends no broadcasts, so the other methods do nothing.
type Delegate struct {
	meta  []byte
	onMsg func([]byte)
}

// NewDelegate returns a delegate that advertises meta and ignores user
// messages.
func NewDelegate(meta Meta) *Delegate { return &Delegate{meta: meta.Encode()} }

// NodeMeta returns the encoded metadata, or nothing when it does not fit
// limit (Start refuses such metadata, so this does not happen in ICE).
func (d *Delegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit {
		return nil
	}
	return d.meta
}

// NotifyMsg hands a user message to the keyring; a plaintext member has
// none and ignores it. It does not block.
func (d *Delegate) NotifyMsg(b []byte) {
	if d.onMsg != nil {
		d.onMsg(b)
	}
}

// GetBroadcasts returns no broadcasts: ICE sends none.
func (d *Delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState returns no state for a push/pull exchange: ICE keeps none in
// gossip.
func (d *Delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState ignores a remote member's push/pull state.
func (d *Delegate) MergeRemoteState(buf []byte, join bool) {}
