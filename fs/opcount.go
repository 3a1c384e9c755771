package fs

// This file is generated from go-fuse's RawFileSystem interface: one
// counting method per FUSE operation.

import (
	"sync/atomic"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// opNames are the FUSE operations counted for the metrics.
var opNames = [...]string{"lookup", "forget", "getattr", "setattr", "mknod", "mkdir", "unlink", "rmdir", "rename", "link", "symlink", "readlink", "access", "getxattr", "listxattr", "setxattr", "removexattr", "create", "tmpfile", "open", "read", "lseek", "getlk", "setlk", "setlkw", "release", "write", "writev", "copyfilerange", "ioctl", "flush", "fsync", "fallocate", "opendir", "readdir", "readdirplus", "releasedir", "fsyncdir", "statfs", "statx"}

// opCounter counts FUSE requests by operation for the metrics: it sits
// between the kernel and the node layer go-fuse provides.
type opCounter struct {
	fuse.RawFileSystem
	counts [len(opNames)]atomic.Uint64
}

// snapshot returns the requests served so far, by operation.
func (o *opCounter) snapshot() map[string]uint64 {
	m := make(map[string]uint64, len(opNames))
	for i, n := range opNames {
		m[n] = o.counts[i].Load()
	}
	return m
}

func (o *opCounter) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) (status fuse.Status) {
	o.counts[0].Add(1)
	return o.RawFileSystem.Lookup(cancel, header, name, out)
}

func (o *opCounter) Forget(nodeid uint64, nlookup uint64) {
	o.counts[1].Add(1)
	o.RawFileSystem.Forget(nodeid, nlookup)
}

func (o *opCounter) GetAttr(cancel <-chan struct{}, input *fuse.GetAttrIn, out *fuse.AttrOut) (code fuse.Status) {
	o.counts[2].Add(1)
	return o.RawFileSystem.GetAttr(cancel, input, out)
}

func (o *opCounter) SetAttr(cancel <-chan struct{}, input *fuse.SetAttrIn, out *fuse.AttrOut) (code fuse.Status) {
	o.counts[3].Add(1)
	return o.RawFileSystem.SetAttr(cancel, input, out)
}

func (o *opCounter) Mknod(cancel <-chan struct{}, input *fuse.MknodIn, name string, out *fuse.EntryOut) (code fuse.Status) {
	o.counts[4].Add(1)
	return o.RawFileSystem.Mknod(cancel, input, name, out)
}

func (o *opCounter) Mkdir(cancel <-chan struct{}, input *fuse.MkdirIn, name string, out *fuse.EntryOut) (code fuse.Status) {
	o.counts[5].Add(1)
	return o.RawFileSystem.Mkdir(cancel, input, name, out)
}

func (o *opCounter) Unlink(cancel <-chan struct{}, header *fuse.InHeader, name string) (code fuse.Status) {
	o.counts[6].Add(1)
	return o.RawFileSystem.Unlink(cancel, header, name)
}

func (o *opCounter) Rmdir(cancel <-chan struct{}, header *fuse.InHeader, name string) (code fuse.Status) {
	o.counts[7].Add(1)
	return o.RawFileSystem.Rmdir(cancel, header, name)
}

func (o *opCounter) Rename(cancel <-chan struct{}, input *fuse.RenameIn, oldName string, newName string) (code fuse.Status) {
	o.counts[8].Add(1)
	return o.RawFileSystem.Rename(cancel, input, oldName, newName)
}

func (o *opCounter) Link(cancel <-chan struct{}, input *fuse.LinkIn, filename string, out *fuse.EntryOut) (code fuse.Status) {
	o.counts[9].Add(1)
	return o.RawFileSystem.Link(cancel, input, filename, out)
}

func (o *opCounter) Symlink(cancel <-chan struct{}, header *fuse.InHeader, pointedTo string, linkName string, out *fuse.EntryOut) (code fuse.Status) {
	o.counts[10].Add(1)
	return o.RawFileSystem.Symlink(cancel, header, pointedTo, linkName, out)
}

func (o *opCounter) Readlink(cancel <-chan struct{}, header *fuse.InHeader) (out []byte, code fuse.Status) {
	o.counts[11].Add(1)
	return o.RawFileSystem.Readlink(cancel, header)
}

func (o *opCounter) Access(cancel <-chan struct{}, input *fuse.AccessIn) (code fuse.Status) {
	o.counts[12].Add(1)
	return o.RawFileSystem.Access(cancel, input)
}

func (o *opCounter) GetXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string, dest []byte) (sz uint32, code fuse.Status) {
	o.counts[13].Add(1)
	return o.RawFileSystem.GetXAttr(cancel, header, attr, dest)
}

func (o *opCounter) ListXAttr(cancel <-chan struct{}, header *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	o.counts[14].Add(1)
	return o.RawFileSystem.ListXAttr(cancel, header, dest)
}

func (o *opCounter) SetXAttr(cancel <-chan struct{}, input *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	o.counts[15].Add(1)
	return o.RawFileSystem.SetXAttr(cancel, input, attr, data)
}

func (o *opCounter) RemoveXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string) (code fuse.Status) {
	o.counts[16].Add(1)
	return o.RawFileSystem.RemoveXAttr(cancel, header, attr)
}

func (o *opCounter) Create(cancel <-chan struct{}, input *fuse.CreateIn, name string, out *fuse.CreateOut) (code fuse.Status) {
	o.counts[17].Add(1)
	return o.RawFileSystem.Create(cancel, input, name, out)
}

func (o *opCounter) Tmpfile(cancel <-chan struct{}, input *fuse.CreateIn, out *fuse.CreateOut) (code fuse.Status) {
	o.counts[18].Add(1)
	return o.RawFileSystem.Tmpfile(cancel, input, out)
}

func (o *opCounter) Open(cancel <-chan struct{}, input *fuse.OpenIn, out *fuse.OpenOut) (status fuse.Status) {
	o.counts[19].Add(1)
	return o.RawFileSystem.Open(cancel, input, out)
}

func (o *opCounter) Read(cancel <-chan struct{}, input *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	o.counts[20].Add(1)
	return o.RawFileSystem.Read(cancel, input, buf)
}

func (o *opCounter) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	o.counts[21].Add(1)
	return o.RawFileSystem.Lseek(cancel, in, out)
}

func (o *opCounter) GetLk(cancel <-chan struct{}, input *fuse.LkIn, out *fuse.LkOut) (code fuse.Status) {
	o.counts[22].Add(1)
	return o.RawFileSystem.GetLk(cancel, input, out)
}

func (o *opCounter) SetLk(cancel <-chan struct{}, input *fuse.LkIn) (code fuse.Status) {
	o.counts[23].Add(1)
	return o.RawFileSystem.SetLk(cancel, input)
}

func (o *opCounter) SetLkw(cancel <-chan struct{}, input *fuse.LkIn) (code fuse.Status) {
	o.counts[24].Add(1)
	return o.RawFileSystem.SetLkw(cancel, input)
}

func (o *opCounter) Release(cancel <-chan struct{}, input *fuse.ReleaseIn) {
	o.counts[25].Add(1)
	o.RawFileSystem.Release(cancel, input)
}

func (o *opCounter) Write(cancel <-chan struct{}, input *fuse.WriteIn, data []byte) (written uint32, code fuse.Status) {
	o.counts[26].Add(1)
	return o.RawFileSystem.Write(cancel, input, data)
}

func (o *opCounter) Writev(cancel <-chan struct{}, input *fuse.WriteIn, data [][]byte) (written uint32, code fuse.Status) {
	o.counts[27].Add(1)
	return o.RawFileSystem.Writev(cancel, input, data)
}

func (o *opCounter) CopyFileRange(cancel <-chan struct{}, input *fuse.CopyFileRangeIn) (written uint32, code fuse.Status) {
	o.counts[28].Add(1)
	return o.RawFileSystem.CopyFileRange(cancel, input)
}

func (o *opCounter) Ioctl(cancel <-chan struct{}, input *fuse.IoctlIn, inbuf []byte, output *fuse.IoctlOut, outbuf []byte) (code fuse.Status) {
	o.counts[29].Add(1)
	return o.RawFileSystem.Ioctl(cancel, input, inbuf, output, outbuf)
}

func (o *opCounter) Flush(cancel <-chan struct{}, input *fuse.FlushIn) fuse.Status {
	o.counts[30].Add(1)
	return o.RawFileSystem.Flush(cancel, input)
}

func (o *opCounter) Fsync(cancel <-chan struct{}, input *fuse.FsyncIn) (code fuse.Status) {
	o.counts[31].Add(1)
	return o.RawFileSystem.Fsync(cancel, input)
}

func (o *opCounter) Fallocate(cancel <-chan struct{}, input *fuse.FallocateIn) (code fuse.Status) {
	o.counts[32].Add(1)
	return o.RawFileSystem.Fallocate(cancel, input)
}

func (o *opCounter) OpenDir(cancel <-chan struct{}, input *fuse.OpenIn, out *fuse.OpenOut) (status fuse.Status) {
	o.counts[33].Add(1)
	return o.RawFileSystem.OpenDir(cancel, input, out)
}

func (o *opCounter) ReadDir(cancel <-chan struct{}, input *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	o.counts[34].Add(1)
	return o.RawFileSystem.ReadDir(cancel, input, out)
}

func (o *opCounter) ReadDirPlus(cancel <-chan struct{}, input *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	o.counts[35].Add(1)
	return o.RawFileSystem.ReadDirPlus(cancel, input, out)
}

func (o *opCounter) ReleaseDir(input *fuse.ReleaseIn) {
	o.counts[36].Add(1)
	o.RawFileSystem.ReleaseDir(input)
}

func (o *opCounter) FsyncDir(cancel <-chan struct{}, input *fuse.FsyncIn) (code fuse.Status) {
	o.counts[37].Add(1)
	return o.RawFileSystem.FsyncDir(cancel, input)
}

func (o *opCounter) StatFs(cancel <-chan struct{}, input *fuse.InHeader, out *fuse.StatfsOut) (code fuse.Status) {
	o.counts[38].Add(1)
	return o.RawFileSystem.StatFs(cancel, input, out)
}

func (o *opCounter) Statx(cancel <-chan struct{}, input *fuse.StatxIn, out *fuse.StatxOut) (code fuse.Status) {
	o.counts[39].Add(1)
	return o.RawFileSystem.Statx(cancel, input, out)
}
