// A Go HTTPS client for weft's end-to-end tests (crates/weft-itest/tests/go.rs).
//
// Usage: client URL. It prints "ready", waits for one line on stdin (so that
// weft, started meanwhile, has probed this executable), then GETs URL over
// HTTP/1.1 (certificate not verified) and prints the response body.
//
// client -write-pc prints the entry address of crypto/tls.(*Conn).Write in
// this executable (the test corrupts a copy there).
package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"time"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-write-pc" {
		fmt.Printf("%d\n", reflect.ValueOf((*tls.Conn).Write).Pointer())
		return
	}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: client URL")
		os.Exit(2)
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "no go-ahead on stdin:", err)
		os.Exit(1)
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		// A non-nil empty map: HTTP/1.1 only, so the request is plain text.
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		DisableKeepAlives: true,
	}
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	resp, err := client.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "GET:", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(os.Stdout, resp.Body); err != nil {
		fmt.Fprintln(os.Stderr, "body:", err)
		os.Exit(1)
	}
}
