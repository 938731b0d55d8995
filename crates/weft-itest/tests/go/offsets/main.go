// Prints the memory layout bpf/go.bpf.c relies on, as this Go version lays it
// out (crates/weft-itest/tests/go.rs compares it with the #defines there).
// Each line: NAME VALUE.
package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"reflect"
	"unsafe"
)

// itabHash reads the type hash the itab of c (a net.Conn) carries at +16.
func itabHash(c net.Conn) (itab uint32, typ uint32) {
	words := (*[2]uintptr)(unsafe.Pointer(&c))
	tab := words[0]
	t := *(*uintptr)(unsafe.Pointer(tab + 8)) // abi.ITab.Type
	return *(*uint32)(unsafe.Pointer(tab + 16)), *(*uint32)(unsafe.Pointer(t + 16))
}

func main() {
	conn, _ := reflect.TypeOf(tls.Conn{}).FieldByName("conn")
	fmt.Println("GO_TLSCONN_CONN", conn.Offset)

	inner := reflect.TypeOf(net.TCPConn{}).Field(0) // net.conn
	fd := inner.Type.Field(0)                       // fd *netFD
	fmt.Println("GO_TCPCONN_FD", inner.Offset+fd.Offset)

	pfd := fd.Type.Elem().Field(0) // netFD.pfd poll.FD
	sysfd, _ := pfd.Type.FieldByName("Sysfd")
	fmt.Println("GO_NETFD_SYSFD", pfd.Offset+sysfd.Offset)

	h, th := itabHash(&net.TCPConn{})
	if h != th {
		panic("itab hash is not at +16")
	}
	fmt.Println("GO_ITAB_HASH", 16)
	fmt.Printf("GO_HASH_TCPCONN %#x\n", h)
	h, _ = itabHash(&net.UnixConn{})
	fmt.Printf("GO_HASH_UNIXCONN %#x\n", h)
}
