// Command flockmq runs one FlockMQ node.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "flockmq: the broker is not built yet; this tree holds the codec (see README.md)")
	os.Exit(2)
}
