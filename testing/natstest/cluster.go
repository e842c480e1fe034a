package natstest

import (
	"net"
	"net/url"
	"strconv"
)

// clusterSpec is what one member needs to know of its cluster.
type clusterSpec struct {
	name  string
	index int
	ports []int // every member's route port, by index
}

func (c *clusterSpec) routeURLs() []*url.URL {
	var urls []*url.URL
	for i, p := range c.ports {
		if i == c.index {
			continue
		}
		urls = append(urls, &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))})
	}
	return urls
}
