package libshake

// Gadgets counts the return-oriented-programming gadgets of code: the
// byte offsets from which up to maxGadget instructions decode, without a
// branch among them, and end in a ret (c3, or c2 with its immediate).
// Every offset counts, aligned with the compiler's instructions or not,
// as a gadget finder (ROPgadget --depth 6) counts them; the count is a
// measure of attack surface, compared between an object and its shaken
// copy.
func Gadgets(code []byte) int {
	n := 0
	for p, b := range code {
		if b != 0xc3 && b != 0xc2 {
			continue
		}
		for s := max(0, p-maxGadgetBytes); s <= p; s++ {
			if endsInRet(code, s, p) {
				n++
			}
		}
	}
	return n
}

const (
	maxGadget      = 6  // instructions, the ret included
	maxGadgetBytes = 30 // how far before a ret a gadget may start
)

// endsInRet reports whether decoding code from s reaches a ret at p
// within maxGadget instructions and no other control transfer.
func endsInRet(code []byte, s, p int) bool {
	for i := 0; i < maxGadget && s <= p; i++ {
		in, err := decode(code[s:])
		if err != nil {
			return false
		}
		if s == p {
			return in.ret
		}
		if in.branch || in.ret || isIndirectBranch(code[s:s+in.len], in) || code[s] == 0xcc {
			return false
		}
		s += in.len
	}
	return false
}

// isIndirectBranch reports call or jmp through a register or memory
// (ff /2, /3, /4, /5).
func isIndirectBranch(b []byte, in inst) bool {
	if in.vex || in.m != 0 || in.op != 0xff {
		return false
	}
	// The modrm byte follows the opcode; prefixes come before it.
	for i, c := range b {
		if c == 0xff && i+1 < len(b) {
			reg := (b[i+1] >> 3) & 7
			return reg >= 2 && reg <= 5
		}
	}
	return false
}
