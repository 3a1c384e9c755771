package tape

// On-disk layout of the virtual library (format 1):
//
//	Dir/library.json               libraryMeta: format, prefix, capacity, drive and cartridge counts
//	Dir/LOCK                       flock'ed by the process that has the library open
//	Dir/<VOLSER>/000000.tar        tape file 0, the label: a tar archive with one member VOL1.json
//	Dir/<VOLSER>/000001.tar ...    committed tape files (aggregates)
//	Dir/<VOLSER>/NNNNNN.tar.partial  the tape file being written; never part of the cartridge
//	Dir/<VOLSER>/INDEX             cartridgeIndex: the committed tape files and their sizes
//
// A library several hosts share (Config.Shared) writes under a lease epoch
// E > 0 from the catalog: tape file n is NNNNNN.eE.tar (.partial while
// written) and the index INDEX.E. The index of the highest epoch is the
// cartridge; a host that lost its lease can only ever write names of its
// own, older epoch, which no reader looks at, so its late writes destroy
// nothing (fencing on the medium, as the catalog fences the commit).
//
// INDEX is the truth about a cartridge: a tape file exists only once INDEX
// lists it. It is replaced atomically (temp file, fsync, rename, fsync dir),
// always after the tape file it announces is durable and always before a
// destroyed tape file is removed, so any crash leaves either the old or the
// new cartridge, plus maybe stray files that Open deletes.

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// formatVersion is the version of the on-disk layout, of library.json, INDEX
// and the label. Opening a newer format is refused rather than guessed at.
const formatVersion = 1

const (
	libraryFile = "library.json"
	lockFile    = "LOCK"
	indexName   = "INDEX"
	labelMember = "VOL1.json"
)

// libraryMeta is library.json.
type libraryMeta struct {
	Format     int    `json:"format"`
	Prefix     string `json:"prefix"`
	Capacity   int64  `json:"capacity"`
	Drives     int    `json:"drives"`
	Cartridges int    `json:"cartridges"`
}

// volumeLabel is VOL1.json inside tape file 0. It lets a cartridge identify
// itself without the library around it, as an ANSI VOL1 label does.
type volumeLabel struct {
	VOLSER  string    `json:"volser"`
	Created time.Time `json:"created"`
	Format  int       `json:"format"`
	// Generation counts how often the cartridge was labelled: 1 when new,
	// one more each time it is erased to scratch (Drive.Erase). A catalog
	// (or a snapshot of one) that recorded copies on an older generation
	// knows they are gone. Labels written before generations read as 1.
	Generation int `json:"generation,omitempty"`
}

// cartridgeIndex is INDEX.
type cartridgeIndex struct {
	Epoch    uint64      `json:"-"` // of the INDEX file it was read from (its name says it)
	Format   int         `json:"format"`
	VOLSER   string      `json:"volser"`
	Capacity int64       `json:"capacity"`
	Full     bool        `json:"full"`
	Files    []indexFile `json:"files"` // committed tape files in order; Files[0] is the label
	// Relabel is set while an erase (Drive.Erase) puts a new label in
	// place: the new label waits as tape file 0's .partial, and Open
	// finishes the job (finishRelabel) if a crash came first.
	Relabel bool `json:"relabel,omitempty"`
}

type indexFile struct {
	N     int    `json:"n"`
	Size  int64  `json:"size"`
	Epoch uint64 `json:"epoch,omitempty"` // lease epoch it was written under (shared library)
}

// tapeFileName is the name of committed tape file n written under epoch
// (0: a library of one host).
func tapeFileName(n int, epoch uint64) string {
	if epoch == 0 {
		return fmt.Sprintf("%06d.tar", n)
	}
	return fmt.Sprintf("%06d.e%d.tar", n, epoch)
}

// name is the file name of a committed tape file.
func (f indexFile) name() string { return tapeFileName(f.N, f.Epoch) }

// partialName is the name of tape file n while it is being written.
func partialName(n int, epoch uint64) string { return tapeFileName(n, epoch) + ".partial" }

// indexFileName is the name of the index written under epoch.
func indexFileName(epoch uint64) string {
	if epoch == 0 {
		return indexName
	}
	return fmt.Sprintf("%s.%d", indexName, epoch)
}

// newestIndex finds the index of the highest epoch in a cartridge
// directory: INDEX (epoch 0) or INDEX.E.
func newestIndex(dir string) (name string, epoch uint64, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, err
	}
	for _, e := range entries {
		n := e.Name()
		var ep uint64
		switch {
		case n == indexName:
		case strings.HasPrefix(n, indexName+"."):
			v, err := strconv.ParseUint(n[len(indexName)+1:], 10, 64)
			if err != nil {
				continue
			}
			ep = v
		default:
			continue
		}
		if name == "" || ep > epoch {
			name, epoch = n, ep
		}
	}
	if name == "" {
		return "", 0, os.ErrNotExist
	}
	return name, epoch, nil
}

// writeFileAtomic replaces path with data so that a crash leaves either the
// old or the new content, never a mix: the data is made durable under a
// temporary name first and the rename itself is made durable by syncing the
// directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncEntries(dir)
}

// syncEntries makes renames, creations and removals in dir durable.
func syncEntries(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeJSONAtomic writes v as indented JSON (readable by an operator with
// cat) to path, atomically.
func writeJSONAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// labelBytes builds tape file 0 of a cartridge: a tar archive, so that plain
// tar reads the label as it reads every other tape file.
func labelBytes(volser string, created time.Time, generation int) ([]byte, error) {
	body, err := json.MarshalIndent(volumeLabel{VOLSER: volser, Created: created.UTC(), Format: formatVersion, Generation: generation}, "", "  ")
	if err != nil {
		return nil, err
	}
	body = append(body, '\n')
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     labelMember,
		Mode:     0o644,
		Size:     int64(len(body)),
		ModTime:  created.Truncate(time.Second),
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(body); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// readLabel parses tape file 0.
func readLabel(path string) (volumeLabel, error) {
	var lbl volumeLabel
	f, err := os.Open(path)
	if err != nil {
		return lbl, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	hdr, err := tr.Next()
	if err != nil {
		return lbl, fmt.Errorf("label: %w", err)
	}
	if hdr.Name != labelMember {
		return lbl, fmt.Errorf("label: first member is %q, want %q", hdr.Name, labelMember)
	}
	if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&lbl); err != nil {
		return lbl, fmt.Errorf("label: %w", err)
	}
	lbl.Generation = max(lbl.Generation, 1)
	return lbl, nil
}

// labelCartridge writes the label and a fresh INDEX for a new cartridge. A
// directory that already has an INDEX is a labelled cartridge (perhaps from
// an interrupted growth of the library) and is left alone: labelling never
// erases data.
func labelCartridge(dir, volser string, capacity int64, now time.Time) error {
	if _, _, err := newestIndex(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	label, err := labelBytes(volser, now, 1)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, tapeFileName(0, 0)), label); err != nil {
		return err
	}
	idx := cartridgeIndex{
		Format:   formatVersion,
		VOLSER:   volser,
		Capacity: capacity,
		Files:    []indexFile{{N: 0, Size: int64(len(label))}},
	}
	return writeJSONAtomic(filepath.Join(dir, indexName), idx)
}

// loadCartridge reads a cartridge's INDEX and checks it against the tape
// files on disk. Stray files (a .partial of a tape file that was being
// written, or tape files beyond INDEX left by a crash between commit steps)
// are deleted: they were never committed. A problem that loses committed
// data is not repaired: it is returned as problem and the cartridge is put in
// the error state, so an operator sees it and nothing overwrites the
// evidence.
//
// In a shared library (shared set) strays and an unfinished erase are left
// alone here: they may be the work of another host right now. The next
// host that takes the cartridge under a newer lease settles them
// (claimEpoch).
func loadCartridge(dir, volser string, defaultCapacity int64, shared bool) (idx cartridgeIndex, generation int, problem string, err error) {
	idx = cartridgeIndex{Format: formatVersion, VOLSER: volser, Capacity: defaultCapacity}
	name, epoch, err := newestIndex(dir)
	if errors.Is(err, os.ErrNotExist) {
		return idx, 0, "INDEX missing (cartridge not labelled)", nil
	}
	if err != nil {
		return idx, 0, "", err
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, os.ErrNotExist) && shared {
		// Replaced by a newer epoch's between the listing and the read.
		return loadCartridge(dir, volser, defaultCapacity, shared)
	}
	if err != nil {
		return idx, 0, "", err
	}
	var disk cartridgeIndex
	if err := json.Unmarshal(data, &disk); err != nil {
		return idx, 0, fmt.Sprintf("INDEX unreadable: %v", err), nil
	}
	if disk.Format != formatVersion {
		return idx, 0, fmt.Sprintf("INDEX format %d, this tapefs reads format %d", disk.Format, formatVersion), nil
	}
	if disk.Capacity <= 0 {
		disk.Capacity = defaultCapacity
	}
	idx = disk
	idx.Epoch = epoch
	if idx.VOLSER != volser {
		return idx, 0, fmt.Sprintf("INDEX names cartridge %q", idx.VOLSER), nil
	}
	if len(idx.Files) == 0 {
		return idx, 0, "INDEX lists no label", nil
	}

	relabelled := false
	if !shared {
		if relabelled, err = finishRelabel(dir, &idx); err != nil {
			return idx, 0, "", err
		}
		if err := removeStrays(dir, idx); err != nil {
			return idx, 0, "", err
		}
	}
	for i, f := range idx.Files {
		if f.N != i {
			return idx, 0, fmt.Sprintf("INDEX entry %d names tape file %d", i, f.N), nil
		}
		st, err := os.Stat(filepath.Join(dir, f.name()))
		if err != nil {
			return idx, 0, fmt.Sprintf("tape file %d: %v", i, err), nil
		}
		if st.Size() != f.Size {
			return idx, 0, fmt.Sprintf("tape file %d is %d bytes, INDEX says %d", i, st.Size(), f.Size), nil
		}
	}
	lbl, err := readLabel(filepath.Join(dir, idx.Files[0].name()))
	if err != nil {
		return idx, 0, err.Error(), nil
	}
	if lbl.VOLSER != volser {
		return idx, 0, fmt.Sprintf("label says VOLSER %q", lbl.VOLSER), nil
	}
	if relabelled && len(idx.Files) > 0 {
		if st, err := os.Stat(filepath.Join(dir, idx.Files[0].name())); err == nil && st.Size() != idx.Files[0].Size {
			return idx, 0, fmt.Sprintf("label is %d bytes after an erase, INDEX says %d", st.Size(), idx.Files[0].Size), nil
		}
	}
	return idx, lbl.Generation, "", nil
}

// finishRelabel completes an erase that a crash interrupted after its
// INDEX was written: the new label (tape file 0's .partial) goes in place;
// the tape files after it are strays that removeStrays deletes. An INDEX
// without Relabel leaves everything as it is (a .partial label written
// before the INDEX is a stray too: the erase never happened).
func finishRelabel(dir string, idx *cartridgeIndex) (bool, error) {
	if !idx.Relabel {
		return false, nil
	}
	label := idx.Files[0] // of the epoch of the erase
	partial := filepath.Join(dir, partialName(0, label.Epoch))
	if _, err := os.Stat(partial); err == nil {
		if err := os.Rename(partial, filepath.Join(dir, label.name())); err != nil {
			return false, err
		}
		if err := syncEntries(dir); err != nil {
			return false, err
		}
	}
	idx.Relabel = false
	return true, writeJSONAtomic(filepath.Join(dir, indexFileName(idx.Epoch)), *idx)
}

// removeStrays deletes what a crash (or, in a shared library, a host that
// lost its lease) can leave behind in a cartridge directory: .partial
// files, tape files that idx does not list (INDEX has the last word),
// indexes of older epochs and temporary files of an interrupted atomic
// replacement.
func removeStrays(dir string, idx cartridgeIndex) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	keep := map[string]bool{indexFileName(idx.Epoch): true}
	for _, f := range idx.Files {
		keep[f.name()] = true
	}
	removed := false
	for _, e := range entries {
		name := e.Name()
		if keep[name] {
			continue
		}
		stray := strings.HasSuffix(name, ".partial") ||
			strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp") ||
			strings.HasSuffix(name, ".tar") && len(name) >= 10 && name[0] >= '0' && name[0] <= '9'
		if n, ok := strings.CutPrefix(name, indexName+"."); ok {
			if ep, err := strconv.ParseUint(n, 10, 64); err == nil && ep < idx.Epoch {
				stray = true
			}
		}
		if name == indexName && idx.Epoch > 0 {
			stray = true
		}
		if !stray {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		removed = true
	}
	if removed {
		return syncEntries(dir)
	}
	return nil
}
