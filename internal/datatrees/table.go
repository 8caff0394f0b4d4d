package datatrees

// rows are the data trees bespoke knows, for Debian 12 (glibc 2.36) on
// x86-64. Each row's Source says where the knowledge comes from: the
// library's source file that opens the tree, or the Debian package that
// ships it. Paths missing on the host are skipped (a tree not installed
// there is not used there either).
var rows = []Tree{
	{
		Name:    "zoneinfo",
		What:    "time zones by IANA name (TZ, a client's zone such as PGTZ or JDBC's at connect)",
		Paths:   []string{"/usr/share/zoneinfo", "/etc/localtime", "/etc/timezone"},
		Opened:  []string{"/usr/share/zoneinfo", "/etc/localtime"},
		Imports: []string{"tzset", "localtime", "localtime_r", "mktime", "timelocal", "apr_time_exp_lt"},
		Source:  "glibc time/tzfile.c __tzfile_read (TZDIR /usr/share/zoneinfo, from tzset, localtime, mktime); Debian's postgresql-15 is built --with-system-tzdata=/usr/share/zoneinfo; libapr's apr_time_exp_lt calls localtime_r; package tzdata",
	},
	{
		Name:   "gconv",
		What:   "character set conversion modules loaded by charset name",
		Paths:  []string{"/usr/lib/x86_64-linux-gnu/gconv"},
		Opened: []string{"/usr/lib/x86_64-linux-gnu/gconv"},
		// glibc reads the module list on every setlocale of a locale with
		// a codeset (wcsmbs/wcsmbsload.c __wcsmbs_load_conv), even for
		// UTF-8, whose converters are built in: redis and postgres do.
		// Only a module opened is evidence.
		NotOpened: []string{"/usr/lib/x86_64-linux-gnu/gconv/gconv-modules", "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache", "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.d"},
		// Not libraries' imports: libstdc++ (codecvt), libidn2 and
		// libaprutil import iconv_open for conversions a server seldom
		// asks for, and the tree is 8 MB.
		ProgramImports: []string{"iconv_open"},
		Source:         "glibc iconv/gconv_conf.c reads gconv-modules(.cache) from GCONV_PATH's default /usr/lib/x86_64-linux-gnu/gconv and dlopens a module per charset (iconv/gconv_dl.c); package libc6",
	},
	{
		Name:    "locales",
		What:    "compiled locales by name (LANG, LC_*, a client's lc_messages or a collation)",
		Paths:   []string{"/usr/lib/locale"},
		Opened:  []string{"/usr/lib/locale"},
		Imports: []string{"setlocale", "newlocale"},
		Source:  "glibc locale/loadarchive.c (/usr/lib/locale/locale-archive) and locale/loadlocale.c (/usr/lib/locale/NAME/LC_*), from setlocale and newlocale; packages libc-bin (C.utf8) and locales",
	},
	{
		Name:   "certificates",
		What:   "the CA certificate store, for TLS peers the workload never met",
		Paths:  []string{"/etc/ssl/certs", "/usr/share/ca-certificates", "/usr/lib/ssl"},
		Opened: []string{"/etc/ssl/certs", "/usr/lib/ssl/certs", "/usr/share/ca-certificates"},
		Links:  []string{"libssl.so.", "libcrypto.so.", "libgnutls.so."},
		// The Java keystore of ca-certificates-java (165 KB where a JDK
		// is installed): OpenSSL and GnuTLS read PEM files only; a JVM
		// reads it through its lib/security/cacerts, which a trace sees.
		Leave:  []string{"/etc/ssl/certs/java"},
		Source: "OpenSSL 3 crypto/x509/by_dir.c and by_file.c (X509_CERT_DIR /usr/lib/ssl/certs, a link to /etc/ssl/certs in Debian's openssl); GnuTLS's --with-default-trust-store-file=/etc/ssl/certs/ca-certificates.crt in Debian; package ca-certificates (and ca-certificates-java for the keystore left out)",
	},
	{
		Name:    "services",
		What:    "service and protocol names (a port or protocol given by name)",
		Paths:   []string{"/etc/services", "/etc/protocols"},
		Opened:  []string{"/etc/services", "/etc/protocols"},
		Imports: []string{"getaddrinfo", "getservbyname", "getservbyport", "getservent", "getprotobyname", "getprotobynumber", "getprotoent"},
		Source:  "glibc nss/nss_files/files-service.c and files-proto.c (services: files, protocols: files in the image's nsswitch.conf); getaddrinfo with a service name calls getservbyname_r (sysdeps/posix/getaddrinfo.c gaih_inet_serv); package netbase",
	},
	{
		Name:   "mime",
		What:   "file name extension to MIME type tables",
		Paths:  []string{"/etc/mime.types"},
		Opened: []string{"/etc/mime.types"},
		Source: "apache2 mod_mime TypesConfig /etc/mime.types (Debian's mime.conf); package media-types",
	},
	{
		Name:   "magic",
		What:   "libmagic's file type database",
		Paths:  []string{"/usr/lib/file/magic.mgc", "/usr/share/misc/magic.mgc", "/usr/share/file/magic.mgc", "/etc/magic"},
		Opened: []string{"/usr/lib/file", "/usr/share/misc/magic", "/usr/share/file", "/etc/magic"},
		Links:  []string{"libmagic.so."},
		Source: "file's src/apprentice.c MAGIC default /usr/lib/file/magic.mgc in Debian (a link from /usr/share/misc/magic.mgc), read by magic_load(NULL); package libmagic-mgc",
	},
	{
		Name:   "terminfo",
		What:   "terminal descriptions by TERM",
		Paths:  []string{"/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo"},
		Opened: []string{"/etc/terminfo", "/lib/terminfo", "/usr/share/terminfo"},
		Links:  []string{"libtinfo.so.", "libncursesw.so.", "libncurses.so."},
		Source: "ncurses ncurses/tinfo/db_iterator.c (TERMINFO_DIRS /etc/terminfo:/lib/terminfo:/usr/share/terminfo in Debian's build); packages ncurses-base and ncurses-term",
	},
}
