package cache

import (
	"context"
	"os"
)

// Cache is an open cache directory.
type Cache struct{}

// Partial is an object being filled by a recall.
type Partial struct{}

// Handle is an open object: its holder keeps it from being evicted.
type Handle struct{}

func Open(cfg Config) (*Cache, error)                                         { panic("TODO") }
func (c *Cache) Close() error                                                 { panic("TODO") }
func (c *Cache) StagingDir(workspace string) string                           { panic("TODO") }
func (c *Cache) NewSealingDir() (string, error)                               { panic("TODO") }
func (c *Cache) SealingDirs() ([]string, error)                               { panic("TODO") }
func (c *Cache) ObjectPath(id uint64) string                                  { panic("TODO") }
func (c *Cache) Adopt(id uint64, src string, synced bool) error               { panic("TODO") }
func (c *Cache) Lookup(id uint64) (ObjectInfo, bool)                          { panic("TODO") }
func (c *Cache) Objects() []ObjectInfo                                        { panic("TODO") }
func (c *Cache) SetSynced(id uint64, synced bool)                             { panic("TODO") }
func (c *Cache) Pin(id uint64, pinned bool)                                   { panic("TODO") }
func (c *Cache) Open(id uint64) (*Handle, error)                              { panic("TODO") }
func (c *Cache) Remove(id uint64) error                                       { panic("TODO") }
func (c *Cache) Evict(id uint64) error                                        { panic("TODO") }
func (c *Cache) EvictTo(target int64) (int64, error)                          { panic("TODO") }
func (c *Cache) Reserve(ctx context.Context, n int64) error                   { panic("TODO") }
func (c *Cache) Stats() Stats                                                 { panic("TODO") }
func (c *Cache) BeginRecall(id uint64, size int64) (*Partial, bool, error)    { panic("TODO") }
func (c *Cache) WaitRange(ctx context.Context, id uint64, off, n int64) error { panic("TODO") }

func (h *Handle) File() *os.File { panic("TODO") }
func (h *Handle) Close() error   { panic("TODO") }

func (p *Partial) Write(b []byte) (int, error) { panic("TODO") }
func (p *Partial) Filled() int64               { panic("TODO") }
func (p *Partial) Commit() error               { panic("TODO") }
func (p *Partial) Abort(err error)             { panic("TODO") }
