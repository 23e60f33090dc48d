//go:build tools

// Package tools pins the etcd and etcdctl main packages so `go mod tidy`
// keeps every module they need.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
