package tape

// Stubs, replaced by the implementation.

import "io"

type aggregateWriter struct{}

func newAggregateWriter(w io.Writer) *AggregateWriter                  { panic("TODO") }
func (a *aggregateWriter) add(m Member, data io.Reader) (int64, error) { panic("TODO") }
func (a *aggregateWriter) written() int64                              { panic("TODO") }
func (a *aggregateWriter) close() error                                { panic("TODO") }
func memberSize(m Member) int64                                        { panic("TODO") }
func readAggregate(r io.Reader, fn func(m Member, data io.Reader) error) error {
	panic("TODO")
}
func openVirtual(cfg Config) (Library, error) { panic("TODO") }
