// Package server serves the control API (package api describes the
// endpoints and owns the wire types) over the engine's surface
// (archive.Surface): it decodes requests, asks the surface as the caller
// the Unix socket identifies (SO_PEERCRED and /proc groups), and answers
// with the wire types, or with the status archive/errkind.Table gives an
// error's kind. Every decision of who may do what is the surface's.
package server
