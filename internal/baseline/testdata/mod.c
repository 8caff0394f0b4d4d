/* testdata modules: gcc -c -DDEPENDS='"depends=..."' mod.c, then xz:
   a depends on b and c, b on c, c on nothing (baseline_test.go). */
__attribute__((section(".modinfo"), used)) static const char depends[] = DEPENDS;
