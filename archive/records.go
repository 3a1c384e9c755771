package archive

import (
	"strconv"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// What the tapes say besides the members (records, tape.Record): enough
// that archive.Rebuild gets back every batch, file and workspace from the
// cartridges alone. The field names below are the on-tape format: they
// are only ever added to, never renamed.

// recordSlack is room kept, when choosing a cartridge, for the records
// that go with a member (workspace, batch, closing).
const recordSlack = 8 * 1024

// closedRecordSize is the room the closing record of a tape file takes on
// a cartridge of pool (its size does not depend on the time written).
func closedRecordSize(pool string) int64 {
	return tape.RecordSize(closedRecord(time.Date(2000, 1, 1, 0, 0, 0, 999999999, time.FixedZone("", 3600)), pool))
}

// closedRecord ends a tape file: when it was closed, and the pool of the
// cartridge it is on ("": none, or not known), so that a catalog rebuilt
// from the library alone puts each cartridge back in its pool.
func closedRecord(t time.Time, pool string) tape.Record {
	f := map[string]string{"time": tape.TimeField(t)}
	if pool != "" {
		f["pool"] = pool
	}
	return tape.Record{Kind: tape.RecordClosed, Fields: f}
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

func batchRecord(b catalog.Batch) tape.Record {
	return tape.Record{Kind: tape.RecordBatch, Fields: map[string]string{
		"workspace": b.Workspace,
		"batch":     u64(b.ID),
		"tag":       b.Tag,
		"entry":     b.Entry,
		"owner":     u64(uint64(b.Owner)),
		"created":   tape.TimeField(b.Created),
		"sealed":    tape.TimeField(b.Sealed),
		"files":     strconv.FormatInt(b.Files, 10),
		"bytes":     strconv.FormatInt(b.Bytes, 10),
		"firstfile": u64(b.FirstFile),
		"attempts":  strconv.Itoa(b.Attempts),
		"reason":    b.Reason,
		"copies":    strconv.Itoa(b.Copies), // 0: written before copies (one)
		// When the batch was wholly on tape (written by a repack, which
		// copies batches long synced): a rebuild keeps it rather than
		// take the repack's tape file's closing time.
		"synced": tape.TimeField(b.Synced),
	}}
}

// cartridgeAdminRecord tells root's state and pool of a cartridge as set
// at at: a catalog rebuilt from the tapes must not take a lost or disabled
// cartridge for a good one.
func cartridgeAdminRecord(c catalog.CartridgeRecord, at time.Time) tape.Record {
	return tape.Record{Kind: tape.RecordCartridge, Fields: map[string]string{
		"volser": c.VOLSER,
		"admin":  c.Admin, // "": the library's own state
		"pool":   c.Pool,
		"time":   tape.TimeField(at),
	}}
}

func workspaceRecord(w catalog.Workspace) tape.Record {
	return tape.Record{Kind: tape.RecordWorkspace, Fields: map[string]string{
		"workspace": w.Name,
		"quota":     strconv.FormatInt(w.Quota, 10),
		"manager":   u64(uint64(w.Manager)),
		"group":     u64(uint64(w.Group)),
		"created":   tape.TimeField(w.Created),
		"copies":    strconv.Itoa(w.Copies), // 0: the daemon's default
	}}
}

// stateRecord tells that batch b changed state after its data was written:
// removed (state DELETED, with when and the state to undelete to),
// undeleted, or purged (b has only its ID and workspace). removed lists
// the entries hidden from its tree at that moment (rm inside the batch).
func stateRecord(b catalog.Batch, purged bool, at time.Time, removed []uint64) tape.Record {
	f := map[string]string{
		"workspace": b.Workspace,
		"batch":     u64(b.ID),
		"time":      tape.TimeField(at),
	}
	if purged {
		f["state"] = "PURGED"
	} else {
		f["state"] = string(b.State)
		f["prior"] = string(b.Prior)
		f["deleted"] = tape.TimeField(b.Deleted)
		f["removed"] = idRanges(removed)
	}
	return tape.Record{Kind: tape.RecordState, Fields: f}
}

// droppedRecord tells that copy c of file f (on a cartridge of label
// generation gen) is no copy any more: it read back wrong and was
// replaced. A rebuild leaves it out.
func droppedRecord(f catalog.File, workspace string, c catalog.Copy, gen int) tape.Record {
	return tape.Record{Kind: tape.RecordDropped, Fields: map[string]string{
		"workspace":  workspace,
		"batch":      u64(f.Batch),
		"fileid":     u64(f.ID),
		"volser":     c.VOLSER,
		"generation": strconv.Itoa(gen),
		"tapefile":   strconv.Itoa(c.TapeFile),
		"offset":     strconv.FormatInt(c.Offset, 10),
	}}
}

// dropKey names a copy in a dropped record.
type dropKey struct {
	file     uint64
	volser   string
	gen      int
	tapeFile int
	offset   int64
}

func parseDropped(r tape.Record) (dropKey, bool) {
	f := r.Fields
	id, err1 := strconv.ParseUint(f["fileid"], 10, 64)
	gen, err2 := strconv.Atoi(f["generation"])
	n, err3 := strconv.Atoi(f["tapefile"])
	off, err4 := strconv.ParseInt(f["offset"], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || f["volser"] == "" {
		return dropKey{}, false
	}
	return dropKey{id, f["volser"], gen, n, off}, true
}

// idRanges writes ascending IDs compactly: "3-7,9".
func idRanges(ids []uint64) string {
	var out []byte
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if len(out) > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendUint(out, ids[i], 10)
		if j > i {
			out = append(out, '-')
			out = strconv.AppendUint(out, ids[j], 10)
		}
		i = j + 1
	}
	return string(out)
}

// linkGroup is the first member of ms with the hard links that follow it:
// they go into one tape file together, so tar can restore the links.
func linkGroup(ms []migrant) []migrant {
	n := 1
	if ms[0].member.Type == tape.MemberFile {
		for n < len(ms) && ms[n].member.Type == tape.MemberLink && ms[n].member.Link == ms[0].file.ID {
			n++
		}
	}
	return ms[:n]
}

// addWorkspaceRecord writes the workspace's attributes at the head of a
// tape file, so the newest tape file of a workspace tells its quota and
// manager.
func (e *Engine) addWorkspaceRecord(aw *tape.AggregateWriter, workspace string) error {
	var w catalog.Workspace
	err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		w, err = tx.Workspace(workspace)
		return err
	})
	if err != nil {
		return err
	}
	return aw.AddRecord(workspaceRecord(w))
}
