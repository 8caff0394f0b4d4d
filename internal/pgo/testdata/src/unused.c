/*
 * unused.c: the "cold" translation unit of the pgo test profile: linked
 * into the program but never called, so its .gcda holds only zero counters.
 */
int unused_entry(int x)
{
	if (x > 3)
		return x * 2;
	return x + 1;
}
