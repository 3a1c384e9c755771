// Package test holds the end-to-end tests of tapefs: the built binary runs
// `tapefs mount` in a subprocess on a real FUSE mount, and real tools (cp,
// rsync, mv, tar, find, ls, diff, md5sum, getfattr, setfattr) work on it.
//
// The tests never mount in their own process (go-fuse: the process serving
// a mount must not touch it). Each test has its own home and mount point,
// so tests run in parallel. In CI (CI=true) a missing /dev/fuse or tool is
// a failure, never a skip. bench.sh holds the benchmarks (make bench).
package test
