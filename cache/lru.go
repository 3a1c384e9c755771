package cache

// lru is the cache's list of objects by last use, most recent at the
// front: a doubly linked list threaded through the objects themselves, so
// that an object costs no list element of its own (a container/list
// element is 48 more bytes per cached object). As with container/list,
// removing or moving an object that is not in the list does nothing.
type lru struct {
	head, tail *object
}

// pushFront adds o at the front; o must not be in the list.
func (l *lru) pushFront(o *object) {
	if o.listed {
		return
	}
	o.prev, o.next, o.listed = nil, l.head, true
	if l.head != nil {
		l.head.prev = o
	} else {
		l.tail = o
	}
	l.head = o
}

// remove takes o out of the list.
func (l *lru) remove(o *object) {
	if !o.listed {
		return
	}
	if o.prev != nil {
		o.prev.next = o.next
	} else {
		l.head = o.next
	}
	if o.next != nil {
		o.next.prev = o.prev
	} else {
		l.tail = o.prev
	}
	o.prev, o.next, o.listed = nil, nil, false
}

// moveToFront makes o the most recently used, if it is in the list.
func (l *lru) moveToFront(o *object) {
	if !o.listed || l.head == o {
		return
	}
	l.remove(o)
	l.pushFront(o)
}

// back is the least recently used object, nil if the list is empty.
func (l *lru) back() *object { return l.tail }

// prev is the object used just after o (towards the front), nil at the
// front or if o is not in the list.
func (l *lru) prev(o *object) *object { return o.prev }
