// Package filetype holds the words for the file types tapefs cannot
// archive (named pipes, sockets, devices), shared by the daemon, which
// refuses such a file in a batch, and the command line, which checks its
// sources first: both say it the same way.
package filetype

import "io/fs"

// Unarchivable names a file type that cannot be archived, for messages:
// "named pipe files cannot be archived".
func Unarchivable(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special"
}
