package archive

import (
	"context"
	"testing"
	"time"
)

// TestRecallWorkspaceBytesHoldsUnreadRecalls: a Recall of 12 files with a
// cap of 3 files' bytes stages 3 and holds the rest (queued, shown held,
// no estimate) until they are read; a read of a held file is served at
// once; reading what is staged lets the rest come, never more than 3
// unread at a time.
func TestRecallWorkspaceBytesHoldsUnreadRecalls(t *testing.T) {
	const files, size = 12, 64 << 10
	te := testSetup{Home: t.TempDir(), Settle: time.Hour, WSBytes: 3 * size}.open(t)
	_, fs := offlineBatch(t, te, files, size)
	var ids []uint64
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	read := map[uint64]bool{}
	unread := func() []uint64 {
		var out []uint64
		for _, id := range ids {
			if info, ok := te.cache.Lookup(id); ok && !info.Partial && !read[id] {
				out = append(out, id)
			}
		}
		if len(out) > 3 {
			t.Fatalf("%d files recalled and unread (%v); the cap is 3", len(out), out)
		}
		return out
	}
	if err := te.Recall(ids...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(unread()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after a minute %d files staged; want 3", len(unread()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		unread()
	}
	rq := te.RecallQueue()
	if rq.Files != files-3 || rq.Held != files-3 || rq.Limit != 3*size || rq.UnreadBytes["ws"] != 3*size {
		t.Errorf("recall queue %+v; want %d files queued, all held, 3 files' bytes unread of the cap", rq, files-3)
	}
	var held uint64
	for _, id := range ids {
		if _, ok := te.cache.Lookup(id); ok {
			continue
		}
		held = id
		fr, ok := te.fileRecall(id)
		if !ok || !fr.Held || fr.Of != files-3 {
			t.Errorf("file %d: %+v, %v; want held, of %d", id, fr, ok, files-3)
		}
	}
	// A reader of a held file does not wait for the cap.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := md5Through(ctx, te.Engine, held); err != nil {
		t.Fatalf("read of a held file: %v", err)
	}
	read[held] = true
	for len(read) < files {
		for _, id := range unread() {
			if _, err := md5Through(ctx, te.Engine, id); err != nil {
				t.Fatal(err)
			}
			read[id] = true
			unread()
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d files read after 30 s", len(read), files)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
