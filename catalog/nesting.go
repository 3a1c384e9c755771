package catalog

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
)

// A transaction opened inside another one on the same goroutine holds two
// of the PostgreSQL pool's connections at once: enough such requests in
// flight take every connection while each waits for one more, and all of
// them wait out TxTimeout (on bbolt a nested Update deadlocks outright).
// With TAPEFS_CATALOG_NESTING=panic (tests) a nested transaction panics
// with both call sites, so the test suites find every one.
var nestingCheck = os.Getenv("TAPEFS_CATALOG_NESTING") == "panic"

var openTxns sync.Map // goroutine ID -> stack of the outer transaction's start

func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		id, _ := strconv.ParseUint(string(b[:i]), 10, 64)
		return id
	}
	return 0
}

// enterTxn notes a transaction starting on this goroutine; the returned
// function notes its end.
func enterTxn() func() {
	if !nestingCheck {
		return func() {}
	}
	id := goroutineID()
	stack := make([]byte, 8<<10)
	stack = stack[:runtime.Stack(stack, false)]
	if outer, nested := openTxns.LoadOrStore(id, stack); nested {
		msg := fmt.Sprintf("catalog: a transaction opened inside another on one goroutine (it holds two pool connections)\n--- inner:\n%s\n--- outer:\n%s", stack, outer)
		// Also on stderr: go-fuse turns a panic in a request into a
		// silent EIO.
		fmt.Fprintln(os.Stderr, msg)
		panic(msg)
	}
	return func() { openTxns.Delete(id) }
}
