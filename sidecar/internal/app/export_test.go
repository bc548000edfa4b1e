package app

// SetReleaseStartupMemory replaces what runs when the pod first becomes ready
// and returns a function that puts the original back.
func SetReleaseStartupMemory(f func()) (restore func()) {
	old := releaseStartupMemory
	releaseStartupMemory = f
	return func() { releaseStartupMemory = old }
}
