// Command dropin prints the kubelet drop-in kubeboot writes, for the unit test.
package main

import (
	"fmt"

	"github.com/kubeboot/kubeboot/pkg/kubelet"
)

func main() { fmt.Print(kubelet.DropIn()) }
