package fs

import "hash/fnv"

// Inode numbers (st_ino) are derived from catalog identities, never
// allocated, so they are the same after a remount and need no table:
//
//	1                          the mount root
//	1<<60 | h<<1               a workspace directory (h: 58-bit FNV-1a of its name)
//	1<<60 | h<<1 | 1           that workspace's put/
//	1<<61 | batch ID           a batch directory MOUNT/<ws>/<id>
//	1<<62 | file ID            an entry of a batch tree; hard links share
//	                           the number of their data owner (File.DataID)
//	below 1<<60                inside put/: the loopback's numbers, which
//	                           are the staging file system's own st_ino
//
// The ranges cannot meet as long as catalog IDs stay below 1<<60 and the
// staging file system's inode numbers do too (ext4, xfs, btrfs and tmpfs
// all hand out far smaller ones).
const (
	rootIno       = 1
	workspaceBit  = uint64(1) << 60
	batchBit      = uint64(1) << 61
	fileBit       = uint64(1) << 62
	workspaceHash = uint64(1)<<58 - 1
)

func workspaceIno(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return workspaceBit | (h.Sum64()&workspaceHash)<<1
}

func putIno(workspace string) uint64 { return workspaceIno(workspace) | 1 }

func batchIno(id uint64) uint64 { return batchBit | id }

func fileIno(dataID uint64) uint64 { return fileBit | dataID }
