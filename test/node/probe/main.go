// Command probe is the test workload of the node test: `probe serve`
// answers HTTP with its hostname; `probe dns NAME` resolves a name;
// `probe get URL` fetches a URL. It is static, so its image is one file.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe serve|dns NAME|get URL")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		host, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "hello from %s\n", host) })
		fmt.Println(http.ListenAndServe(":8080", nil))
		os.Exit(1)
	case "dns":
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(ctx, os.Args[2])
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(addrs)
	case "get":
		// Retried for a while: a node's kube-proxy or CNI may still be
		// catching up when the pod starts; the test judges the last answer.
		c := &http.Client{Timeout: 10 * time.Second}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			resp, err := c.Get(os.Args[2])
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				fmt.Printf("%d %s", resp.StatusCode, body)
				break
			}
			if time.Now().After(deadline) {
				fmt.Println("error:", err)
				os.Exit(1)
			}
			time.Sleep(time.Second)
		}
	}
	// Keep the pod around so the test can read its log.
	time.Sleep(time.Hour)
}
