package fs

import gofs "github.com/hanwen/go-fuse/v2/fs"

// What each node and handle type implements, at a glance. Every node
// outside put/ implements every namespace operation (readOnly), because
// go-fuse lets an unimplemented unlink or rmdir succeed silently.

// rootDir: MOUNT/
var (
	_ = (gofs.NodeLookuper)((*rootDir)(nil))
	_ = (gofs.NodeOpendirHandler)((*rootDir)(nil))
	_ = (gofs.NodeGetattrer)((*rootDir)(nil))
	_ = (gofs.NodeStatfser)((*rootDir)(nil))
	_ = (readOnlyNode)((*rootDir)(nil))
)

// wsDir: MOUNT/<ws>
var (
	_ = (gofs.NodeLookuper)((*wsDir)(nil))
	_ = (gofs.NodeOpendirHandler)((*wsDir)(nil))
	_ = (gofs.NodeGetattrer)((*wsDir)(nil))
	_ = (gofs.NodeStatfser)((*wsDir)(nil))
	_ = (gofs.NodeRmdirer)((*wsDir)(nil)) // soft-deletes an emptied batch
	_ = (readOnlyNode)((*wsDir)(nil))
)

// batchDir: MOUNT/<ws>/<id>
var (
	_ = (gofs.NodeLookuper)((*batchDir)(nil))
	_ = (gofs.NodeOpendirHandler)((*batchDir)(nil))
	_ = (gofs.NodeGetattrer)((*batchDir)(nil))
	_ = (gofs.NodeStatfser)((*batchDir)(nil))
	_ = (gofs.NodeGetxattrer)((*batchDir)(nil))
	_ = (gofs.NodeListxattrer)((*batchDir)(nil))
	_ = (gofs.NodeSetxattrer)((*batchDir)(nil)) // user.tapefs.recall
	_ = (gofs.NodeUnlinker)((*batchDir)(nil))   // rm: engine.RemoveEntry
	_ = (gofs.NodeRmdirer)((*batchDir)(nil))
	_ = (readOnlyNode)((*batchDir)(nil))
)

// entryNode: files, directories and symlinks of a batch tree
var (
	_ = (gofs.NodeLookuper)((*entryNode)(nil))
	_ = (gofs.NodeOpendirHandler)((*entryNode)(nil))
	_ = (gofs.NodeGetattrer)((*entryNode)(nil))
	_ = (gofs.NodeStatfser)((*entryNode)(nil))
	_ = (gofs.NodeReadlinker)((*entryNode)(nil))
	_ = (gofs.NodeOpener)((*entryNode)(nil))
	_ = (gofs.NodeGetxattrer)((*entryNode)(nil))
	_ = (gofs.NodeListxattrer)((*entryNode)(nil))
	_ = (gofs.NodeSetxattrer)((*entryNode)(nil)) // user.tapefs.recall
	_ = (gofs.NodeUnlinker)((*entryNode)(nil))   // rm: engine.RemoveEntry
	_ = (gofs.NodeRmdirer)((*entryNode)(nil))
	_ = (gofs.NodeOnForgetter)((*entryNode)(nil)) // trim.go: nodes held
	_ = (readOnlyNode)((*entryNode)(nil))
)

// readHandle, passHandle: open batch files
var (
	_ = (gofs.FileReader)((*readHandle)(nil))
	_ = (gofs.FileReleaser)((*readHandle)(nil))
	_ = (gofs.FileReader)((*passHandle)(nil)) // when passthrough is not possible
	_ = (gofs.FileReleaser)((*passHandle)(nil))
	_ = (gofs.FilePassthroughFder)((*passHandle)(nil))
)

// catalogDir: an open directory listed from the catalog
var (
	_ = (gofs.FileReaddirenter)((*catalogDir)(nil))
	_ = (gofs.FileLookuper)((*catalogDir)(nil))
	_ = (gofs.FileSeekdirer)((*catalogDir)(nil))
	_ = (gofs.FileReleasedirer)((*catalogDir)(nil))
)

// putNode: put/ and everything in it (a wrapped loopback node)
var (
	_ = (gofs.NodeWrapChilder)((*putNode)(nil))
	_ = (gofs.NodeGetattrer)((*putNode)(nil))
	_ = (gofs.NodeStatxer)((*putNode)(nil))
	_ = (gofs.NodeSetattrer)((*putNode)(nil))
	_ = (gofs.NodeStatfser)((*putNode)(nil))
	_ = (gofs.NodeOpener)((*putNode)(nil))
	_ = (gofs.NodeCreater)((*putNode)(nil))
	_ = (gofs.NodeTmpfiler)((*putNode)(nil))
	_ = (gofs.NodeMkdirer)((*putNode)(nil))
	_ = (gofs.NodeMknoder)((*putNode)(nil))
	_ = (gofs.NodeSymlinker)((*putNode)(nil))
	_ = (gofs.NodeLinker)((*putNode)(nil))
	_ = (gofs.NodeUnlinker)((*putNode)(nil))
	_ = (gofs.NodeRmdirer)((*putNode)(nil))
	_ = (gofs.NodeRenamer)((*putNode)(nil))
	_ = (gofs.NodeGetxattrer)((*putNode)(nil))
	_ = (gofs.NodeListxattrer)((*putNode)(nil))
	_ = (gofs.NodeSetxattrer)((*putNode)(nil))
	_ = (gofs.NodeRemovexattrer)((*putNode)(nil))
	_ = (gofs.NodeCopyFileRanger)((*putNode)(nil))
	// from the loopback: Lookup, Readdir, Readlink, ...
	_ = (gofs.NodeLookuper)((*putNode)(nil))
	_ = (gofs.NodeReadlinker)((*putNode)(nil))
)

// putFile: an open file of put/ (the loopback's handle)
var (
	_ = (gofs.FileWriter)((*putFile)(nil))
	_ = (gofs.FileAllocater)((*putFile)(nil))
	_ = (gofs.FileFlusher)((*putFile)(nil))
	_ = (gofs.FileReleaser)((*putFile)(nil))
	_ = (gofs.FilePassthroughFder)((*putFile)(nil))
	_ = (gofs.FileReader)((*putFile)(nil))
	_ = (gofs.FileGetattrer)((*putFile)(nil))
	_ = (gofs.FileSetattrer)((*putFile)(nil))
)

// readOnlyNode is every write a node outside put/ must refuse or handle.
type readOnlyNode interface {
	gofs.NodeSetattrer
	gofs.NodeMkdirer
	gofs.NodeMknoder
	gofs.NodeCreater
	gofs.NodeTmpfiler
	gofs.NodeSymlinker
	gofs.NodeLinker
	gofs.NodeRenamer
	gofs.NodeUnlinker
	gofs.NodeRmdirer
	gofs.NodeSetxattrer
	gofs.NodeRemovexattrer
	gofs.NodeGetxattrer // foreignXattr: "not supported" for labels and ACLs
}
