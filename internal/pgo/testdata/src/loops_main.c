/* loops_main.c: runs loops.c's functions for the profile. */
int work(int *a, int n);
int other(int *a, int n);
int callhelper(int x);

int a[1000];

int main(void)
{
	int s = 0;

	for (int k = 0; k < 1000; k++)
		s += work(a, 1000) + other(a, 1000) + callhelper(k);
	return s & 1;
}
