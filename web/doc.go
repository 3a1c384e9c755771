// Package web owns the read-only HTTP face of the daemon on TCP (--http):
// the status pages, the Atom feed, the read-only JSON of the control API
// under /api/, and the Prometheus metrics under /metrics.
//
//	GET /                         overview: workspaces, recent batches, library, cache, events
//	GET /batches?workspace=&state=&after=&before=
//	                              batches, filtered, paged (newest first)
//	GET /batches/{id}?after=      one batch: its files (paged), events and cartridges
//	GET /feed.atom?workspace=     Atom 1.0: batch state changes and failures
//	GET /api/v1/...               the GET routes of the control API, as JSON
//	GET /metrics                  Prometheus text format
//
// Decisions:
//
//   - Read-only. Every method but GET and HEAD is answered 405: nothing
//     on this listener changes the archive. File contents are not served
//     here either (/api/v1/files/{id}/data is refused): reading one would
//     start a recall, and contents are given only to callers the control
//     socket has identified.
//   - Who is asking (peer.go). A TCP peer has no SO_PEERCRED, but a peer
//     on loopback is a process of this machine and the kernel records the
//     owner of its socket (/proc/net/tcp); the process holding it gives its
//     groups. Each connection is identified once, when accepted, and its
//     requests see the archive through the access rule of
//     archive/access.go as that user: the workspaces, batches, paths and
//     events the mount and the control socket show them. An owner that
//     cannot be found sees no workspace; /metrics (it names every
//     workspace) is root's. Listen binds a non-loopback address only with
//     a token, and then every request must carry it (Authorization:
//     Bearer TOKEN, or ?token=TOKEN for browsers and feed readers; the
//     links of a page requested with ?token= keep it): such a request is
//     the operator's, the anonymous caller of archive/access.go, which
//     sees every workspace's records, changes nothing and reads no file.
//     What any given user may do is answered by
//     /api/v1/batches/{id}/access, from the same rule.
//   - Bounded work per request. The catalog may hold 100,000s of batches;
//     each request reads pages of it (batch lists by cursor, at most a
//     fixed number of records for a filtered list, the newest events by a
//     widening window), never all of it. The one figure that needs every
//     batch, batches and bytes by workspace and state (the overview's
//     counts, the metrics), is counted once and then kept up to date from
//     the event log: every batch change records an event, and only the
//     batches named by new events are read again.
//   - Pages are plain server-rendered HTML (html/template, embedded), with
//     the stylesheet inlined and a Content-Security-Policy that allows no
//     script at all. A page refreshes itself (meta refresh) only while
//     something moves: a batch CACHING, CACHED or SYNCING, a recall queued,
//     an entry of put/ waiting to be sealed, a drive busy.
//   - Everything users typed (workspace names, tags, entries, paths, event
//     messages) is escaped by html/template or encoding/xml; control
//     characters in names are shown as Go escapes (\n).
//
// web knows nothing of FUSE: the mount hands in its operation counts as a
// function (Options.FUSEOps).
package web
