package outbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt maps its file into memory and trusts what it reads there: a page
// number past the end of a truncated file is a SIGBUS (a fatal error, not a
// panic), a damaged freelist or page header a panic in whichever goroutine
// reads it, bbolt's own included. So before bbolt is given a file, the
// outbox reads the file's structure itself, with ReadAt (a short read is an
// error, never a fault), and refuses a file whose structure bbolt could not
// walk safely: every page bbolt would reach from the current meta page (the
// freelist, and every branch, leaf and overflow page of every bucket) is
// checked to lie inside the file and below the high-water mark, to be of the
// right kind, to be reached once and not be free, and to hold elements that
// lie inside it, in key order. The records' contents are checked later, as
// they are read (their checksums, record.go). The layout read here is
// bbolt's (go.etcd.io/bbolt/internal/common): it has not changed since
// bbolt's version 2 of the format, which the meta page names.

// bbolt's on-disk constants.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltHeaderSize   = 16 // page: id u64, flags u16, count u16, overflow u32
	boltElementSize  = 16 // leaf: flags, pos, ksize, vsize (u32); branch: pos, ksize (u32), pgid (u64)
	boltMetaSize     = 64
	boltBranchPage   = 0x01
	boltLeafPage     = 0x02
	boltFreelistPage = 0x10
	boltBucketLeaf   = 0x01
	boltNoFreelist   = ^uint64(0)
	// boltMaxDepth bounds the tree's depth: bbolt's trees of a few billion
	// keys are a handful of levels deep, and a cycle must not recurse.
	boltMaxDepth = 64
)

// byteOrder is the order bbolt writes its integers in: the machine's own.
var byteOrder = binary.NativeEndian

// boltMeta is what the outbox reads of a bbolt meta page.
type boltMeta struct {
	pageSize       uint32
	root, freelist uint64 // page numbers
	hwm            uint64 // the high-water mark: the file's page count in use
	txid           uint64
}

func parseMeta(page []byte) (boltMeta, bool) {
	if len(page) < boltHeaderSize+boltMetaSize {
		return boltMeta{}, false
	}
	m := page[boltHeaderSize : boltHeaderSize+boltMetaSize]
	h := fnv.New64a()
	h.Write(m[:56])
	if byteOrder.Uint32(m[0:]) != boltMagic || byteOrder.Uint32(m[4:]) != boltVersion || byteOrder.Uint64(m[56:]) != h.Sum64() {
		return boltMeta{}, false
	}
	return boltMeta{
		pageSize: byteOrder.Uint32(m[8:]),
		root:     byteOrder.Uint64(m[16:]),
		freelist: byteOrder.Uint64(m[32:]),
		hwm:      byteOrder.Uint64(m[40:]),
		txid:     byteOrder.Uint64(m[48:]),
	}, true
}

// fileReader reads the pages of a bbolt file with ReadAt.
type fileReader struct {
	f        *os.File
	size     int64
	pageSize int
	meta     boltMeta
	free     map[uint64]bool
	seen     map[uint64]bool
	spare    [][]byte
	// tolerant walks past a damaged page (salvage) instead of stopping at
	// it (check), counting it in damaged.
	tolerant bool
	damaged  int
}

// boltMetas returns the file's valid meta pages, the current (highest
// transaction) first, read as bbolt reads them: the page size from the
// first valid one, then the pages at 0 and at that size.
func boltMetas(f *os.File, size int64) []boltMeta {
	buf := make([]byte, 4096)
	pageSize := 0
	if n, _ := f.ReadAt(buf, 0); n == len(buf) {
		if m, ok := parseMeta(buf); ok {
			pageSize = int(m.pageSize)
		}
	}
	for i := 0; pageSize == 0 && i <= 14; i++ {
		pos := int64(1024) << i
		if pos >= size-1024 {
			break
		}
		n, _ := f.ReadAt(buf, pos)
		if m, ok := parseMeta(buf[:n]); ok {
			pageSize = int(m.pageSize)
		}
	}
	if pageSize < 1024 || pageSize > 1<<24 || pageSize&(pageSize-1) != 0 {
		return nil
	}
	var metas []boltMeta
	for _, off := range []int64{0, int64(pageSize)} {
		n, _ := f.ReadAt(buf[:boltHeaderSize+boltMetaSize], off)
		if m, ok := parseMeta(buf[:n]); ok && int(m.pageSize) == pageSize {
			metas = append(metas, m)
		}
	}
	if len(metas) == 2 && metas[1].txid > metas[0].txid {
		metas[0], metas[1] = metas[1], metas[0]
	}
	return metas
}

func newFileReader(f *os.File, size int64, m boltMeta, tolerant bool) (*fileReader, error) {
	r := &fileReader{f: f, size: size, pageSize: int(m.pageSize), meta: m,
		free: map[uint64]bool{}, seen: map[uint64]bool{0: true, 1: true}, tolerant: tolerant}
	if m.hwm < 3 || m.hwm > uint64(size)/uint64(m.pageSize) {
		return nil, fmt.Errorf("truncated: %d bytes, where its meta page counts %d pages of %d bytes", size, m.hwm, m.pageSize)
	}
	return r, nil
}

// readPage reads page id and the pages it overflows into, checking that
// they lie below the high-water mark, that no other page reached them, that
// they are not free, and that the page is of a kind in want.
func (r *fileReader) readPage(id uint64, want uint16) ([]byte, error) {
	if id < 2 || id >= r.meta.hwm {
		return nil, fmt.Errorf("page %d: out of range [2, %d)", id, r.meta.hwm)
	}
	head := make([]byte, boltHeaderSize)
	if _, err := r.f.ReadAt(head, int64(id)*int64(r.pageSize)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	flags, overflow := byteOrder.Uint16(head[8:]), uint64(byteOrder.Uint32(head[12:]))
	if byteOrder.Uint64(head) != id {
		return nil, fmt.Errorf("page %d: its header says page %d", id, byteOrder.Uint64(head))
	}
	// Exactly one kind: bbolt tests one bit at a time, so a page flagged
	// both branch and leaf would be read as a branch after passing as a leaf.
	if flags&want == 0 || flags&(flags-1) != 0 {
		return nil, fmt.Errorf("page %d: flags %#x where one of %#x was expected", id, flags, want)
	}
	if id+overflow >= r.meta.hwm {
		return nil, fmt.Errorf("page %d: overflows %d pages past the high-water mark %d", id, overflow, r.meta.hwm)
	}
	for p := id; p <= id+overflow; p++ {
		if r.seen[p] {
			return nil, fmt.Errorf("page %d: reached twice", p)
		}
		if r.free[p] && !r.tolerant {
			return nil, fmt.Errorf("page %d: in use and free", p)
		}
	}
	for p := id; p <= id+overflow; p++ {
		r.seen[p] = true
	}
	span := int((overflow + 1) * uint64(r.pageSize))
	buf := r.buffer(span)
	copy(buf, head)
	if _, err := r.f.ReadAt(buf[len(head):], int64(id)*int64(r.pageSize)+int64(len(head))); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return buf, nil
}

// buffer returns a buffer of n bytes, a spare one when there is one large
// enough: a walk needs one per level of the tree, not one per page.
func (r *fileReader) buffer(n int) []byte {
	for i, b := range r.spare {
		if cap(b) >= n {
			r.spare = append(r.spare[:i], r.spare[i+1:]...)
			return b[:n]
		}
	}
	return make([]byte, n)
}

// release gives back a buffer readPage returned.
func (r *fileReader) release(b []byte) { r.spare = append(r.spare, b) }

// readFreelist reads the freelist page into r.free, checking each free page
// number.
func (r *fileReader) readFreelist() error {
	if r.meta.freelist == boltNoFreelist {
		return nil
	}
	buf, err := r.readPage(r.meta.freelist, boltFreelistPage)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	start, count := uint64(boltHeaderSize), uint64(byteOrder.Uint16(buf[10:]))
	if count == 0xFFFF {
		count = byteOrder.Uint64(buf[boltHeaderSize:])
		start += 8
	}
	if count > (uint64(len(buf))-start)/8 {
		return fmt.Errorf("freelist: %d page numbers do not fit its %d bytes", count, len(buf))
	}
	for i := range count {
		id := byteOrder.Uint64(buf[start+8*i:])
		if id < 2 || id >= r.meta.hwm || r.free[id] || r.seen[id] {
			return fmt.Errorf("freelist: page %d is out of range, listed twice, or the freelist's own", id)
		}
		r.free[id] = true
	}
	return nil
}

// element is one key of a page: its value, or the page it points to.
type element struct {
	key, value []byte
	child      uint64 // a branch's
	bucket     bool   // a leaf's value is a bucket
}

// elements returns a page's elements (buf holds the page at its start),
// checking that each lies inside the page and that the keys are in order.
// When skip is not nil, an element that fails is left out and counted in
// *skip instead (salvage).
func elements(buf []byte, skip *int) ([]element, error) {
	flags, count := byteOrder.Uint16(buf[8:]), uint64(byteOrder.Uint16(buf[10:]))
	if boltHeaderSize+count*boltElementSize > uint64(len(buf)) {
		return nil, fmt.Errorf("%d elements do not fit the page's %d bytes", count, len(buf))
	}
	out := make([]element, 0, count)
	bad := func(err error) error {
		if skip == nil {
			return err
		}
		*skip++
		return nil
	}
	for i := range count {
		off := boltHeaderSize + i*boltElementSize
		e := buf[off : off+boltElementSize]
		var pos, ksize, vsize uint64
		var el element
		if flags == boltBranchPage {
			pos, ksize = uint64(byteOrder.Uint32(e[0:])), uint64(byteOrder.Uint32(e[4:]))
			el.child = byteOrder.Uint64(e[8:])
		} else {
			lf := byteOrder.Uint32(e[0:])
			if lf&^boltBucketLeaf != 0 {
				if err := bad(fmt.Errorf("element %d: flags %#x", i, lf)); err != nil {
					return nil, err
				}
				continue
			}
			el.bucket = lf == boltBucketLeaf
			pos, ksize, vsize = uint64(byteOrder.Uint32(e[4:])), uint64(byteOrder.Uint32(e[8:])), uint64(byteOrder.Uint32(e[12:]))
		}
		start := off + pos
		if ksize == 0 || start+ksize+vsize > uint64(len(buf)) {
			if err := bad(fmt.Errorf("element %d: key of %d and value of %d bytes at %d, outside the page's %d bytes", i, ksize, vsize, start, len(buf))); err != nil {
				return nil, err
			}
			continue
		}
		el.key, el.value = buf[start:start+ksize], buf[start+ksize:start+ksize+vsize]
		if len(out) > 0 && bytes.Compare(out[len(out)-1].key, el.key) >= 0 {
			if err := bad(fmt.Errorf("element %d: keys out of order", i)); err != nil {
				return nil, err
			}
			continue
		}
		out = append(out, el)
	}
	return out, nil
}

// bucketRef is where a bucket's keys are: a root page, or a page inline in
// its parent's value.
type bucketRef struct {
	root     uint64
	sequence uint64
	inline   []byte
}

func parseBucket(v []byte) (bucketRef, error) {
	if len(v) < 16 {
		return bucketRef{}, fmt.Errorf("a bucket's value of %d bytes", len(v))
	}
	b := bucketRef{root: byteOrder.Uint64(v), sequence: byteOrder.Uint64(v[8:])}
	if b.root == 0 {
		b.inline = v[16:]
		if len(b.inline) < boltHeaderSize || byteOrder.Uint16(b.inline[8:]) != boltLeafPage {
			return bucketRef{}, errors.New("an inline bucket that is not a leaf page")
		}
	}
	return b, nil
}

// walkBucket calls leaf for each key of bucket b, in key order. A strict
// walk stops at the first damage; a tolerant one skips the damaged page
// and goes on.
func (r *fileReader) walkBucket(b bucketRef, depth int, leaf func(element) error) error {
	var last []byte
	if b.root == 0 {
		return r.walkElements(b.inline, depth, &last, leaf)
	}
	return r.walkPage(b.root, depth, &last, leaf)
}

func (r *fileReader) walkPage(id uint64, depth int, last *[]byte, leaf func(element) error) error {
	if depth > boltMaxDepth {
		return fmt.Errorf("page %d: deeper than %d levels", id, boltMaxDepth)
	}
	buf, err := r.readPage(id, boltBranchPage|boltLeafPage)
	if err == nil {
		err = r.walkElements(buf, depth, last, leaf)
		r.release(buf)
	}
	if err != nil && r.tolerant {
		r.damaged++
		return nil
	}
	return err
}

func (r *fileReader) walkElements(buf []byte, depth int, last *[]byte, leaf func(element) error) error {
	var skip *int
	if r.tolerant {
		skip = &r.damaged
	}
	els, err := elements(buf, skip)
	if err != nil {
		return fmt.Errorf("page %d: %w", byteOrder.Uint64(buf), err)
	}
	isBranch := byteOrder.Uint16(buf[8:]) == boltBranchPage
	if isBranch && len(els) == 0 {
		return fmt.Errorf("page %d: a branch without elements", byteOrder.Uint64(buf))
	}
	for _, el := range els {
		if isBranch {
			if err := r.walkPage(el.child, depth+1, last, leaf); err != nil {
				return err
			}
			continue
		}
		if *last != nil && bytes.Compare(*last, el.key) >= 0 {
			if r.tolerant {
				r.damaged++
				continue
			}
			return fmt.Errorf("page %d: keys out of order across pages", byteOrder.Uint64(buf))
		}
		*last = append((*last)[:0], el.key...) // the page's buffer is reused
		if err := leaf(el); err != nil {
			return err
		}
	}
	return nil
}

// checkFile reads the structure of the bbolt file at path, holding bbolt's
// lock on it (so that no other process writes it meanwhile: errLocked
// when one holds it past lockTimeout), and returns why bbolt could not use
// it safely, or nil. An absent or empty file is fine: bbolt formats it.
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lockFile(f, lockTimeout); err != nil {
		return err
	}
	info, err := f.Stat()
	if err != nil || info.Size() == 0 {
		return err
	}
	metas := boltMetas(f, info.Size())
	if len(metas) == 0 {
		return errors.New("no valid bbolt meta page: not a bbolt file, or both its meta pages are damaged")
	}
	r, err := newFileReader(f, info.Size(), metas[0], false)
	if err != nil {
		return err
	}
	if err := r.readFreelist(); err != nil {
		return err
	}
	var bucket func(el element) error
	depth := 0
	bucket = func(el element) error {
		if !el.bucket {
			return nil
		}
		b, err := parseBucket(el.value)
		if err != nil {
			return fmt.Errorf("bucket %q: %w", el.key, err)
		}
		depth++
		defer func() { depth-- }()
		if depth > boltMaxDepth {
			return errors.New("buckets nested too deep")
		}
		return r.walkBucket(b, depth, bucket)
	}
	return r.walkBucket(bucketRef{root: metas[0].root}, 0, bucket)
}
