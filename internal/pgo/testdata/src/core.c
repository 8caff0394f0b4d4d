/*
 * core.c: the "hot" translation unit of the pgo test profile.
 * main calls step() 7 times and never calls never_called().
 */
#include <stdio.h>

int unused_entry(int x);

__attribute__((noinline)) int step(int acc, int i)
{
	if (i & 1)
		return acc + i;
	return acc - i;
}

__attribute__((noinline)) int never_called(int x)
{
	int i, s = 0;

	for (i = 0; i < x; i++)
		s += i * x;
	return s;
}

int main(int argc, char **argv)
{
	int i, acc = 0;

	for (i = 0; i < 7; i++)
		acc = step(acc, i);
	if (argc > 100)
		acc += never_called(argc) + unused_entry(argc);
	printf("%d\n", acc);
	return 0;
}
