// A Go HTTPS server for weft's end-to-end tests (crates/weft-itest/tests/go.rs).
//
// Usage: server PORT CERT KEY. Listens on 127.0.0.1:PORT (HTTP/1.1 only),
// prints "listening", and answers every request with "go-body-PATH\n". For
// each request it prints "request REMOTE_ADDR PATH" on stdout: the test's
// ground truth for the client's side of the connection.
package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: server PORT CERT KEY")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Printf("request %s %s\n", r.RemoteAddr, r.URL.Path)
			fmt.Fprintf(w, "go-body-%s\n", r.URL.Path)
		}),
		// A non-nil empty map: HTTP/1.1 only.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	fmt.Println("listening")
	if err := srv.ServeTLS(ln, os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(1)
	}
}
