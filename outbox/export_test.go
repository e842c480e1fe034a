package outbox

// Queued returns what the forwarder would send from the file, read as it
// reads it (a page at a time, store.page): the records it would publish, in
// order, and how many it would set aside as undecodable. The fuzz test holds
// these to the messages that were published.
func Queued(ob *Outbox) (sendable []QueuedMsg, setAside int, err error) {
	var after uint64
	for {
		recs, err := ob.st.page(after, ob.opts.maxInFlight)
		if err != nil {
			return sendable, setAside, err
		}
		for _, r := range recs {
			if r.corrupt != nil {
				setAside++
				continue
			}
			sendable = append(sendable, QueuedMsg{ID: r.id, Subject: r.subject, Data: string(r.data), Header: r.header})
		}
		if len(recs) < ob.opts.maxInFlight {
			return sendable, setAside, nil
		}
		after = recs[len(recs)-1].seq
	}
}

// QueuedMsg is one record Queued returns.
type QueuedMsg struct {
	ID, Subject, Data string
	Header            map[string][]string
}
