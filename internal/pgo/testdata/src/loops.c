/*
 * loops.c: two identical loops for the function-exclusion test. With the
 * profile both would be unrolled and vectorized; "function work" in the
 * exclusion list must leave work as the plain -O2 build has it.
 */
int work(int *a, int n)
{
	int s = 0;

	for (int i = 0; i < n; i++)
		s += a[i] * 3;
	return s;
}

int other(int *a, int n)
{
	int s = 0;

	for (int i = 0; i < n; i++)
		s += a[i] * 5;
	return s;
}

static int helper(int x)
{
	return x * 7;
}

int callhelper(int x)
{
	return helper(x) + 1;
}
