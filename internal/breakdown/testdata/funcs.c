/* Three functions of different sizes: testdata/funcs.o, built with
   gcc -O1 -c funcs.c (breakdown_test.go reads its symbols). */
int small(int x) { return x + 1; }
int medium(int x) { int s = 0; for (int i = 0; i < x; i++) s += i * x; return s; }
int large(int *a, int n) { int s = 0; for (int i = 0; i < n; i++) { if (a[i] > 3) s += a[i] * 7; else s -= a[i]; if (s > 1000) s /= 3; } return s; }
