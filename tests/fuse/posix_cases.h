/*
 * The steps of posix_suite.c, one table per category. Each category starts
 * in an empty directory of its own, mode 0755, root's; identities: root,
 * u1 (1000:1000), u1x (u1 with supplementary group 2000), u2 (1001:1001).
 * Included once, by posix_suite.c.
 */

static const struct step chmod_steps[] = {
	S(R, "create", "f", "0644"),
	S(R, "chmod", "f", "0755"),
	S(R, "chmod", "f", "07777"),
	S(R, "chown", "f", "1000", "1000"),
	S(U1, "chmod", "f", "0600"),
	S(U2, "chmod", "f", "0644"),
	S(U1, "chmod", "f", "02755"),
	S(R, "chown", "f", "1000", "2000"),
	S(U1, "chmod", "f", "02755"),        /* not in group 2000: set-gid dropped */
	S(U1X, "chmod", "f", "02755"),       /* a member: kept */
	S(U1, "chmod", "f", "04755"),
	S(R, "mkdir", "d", "0755"),
	S(R, "chmod", "d", "01777"),
	S(R, "chmod", "d", "06755"),
	S(R, "symlink", "f", "l"),
	S(R, "chmod", "l", "0700"),          /* follows the link */
	S(R, "chmod", "missing", "0644"),
	S(R, "chmod", "f/x", "0644"),
	S(R, "chmod", "@N256", "0644"),
	S(R, "chmod", "@D17/x", "0644"),
	S(R, "chmod", "f", "0600"),
	S(R, "chmod", "d", "0700"),
	S(U1, "chmod", "d/x", "0644"),       /* search denied before the name */
};

static const struct step chown_steps[] = {
	S(R, "create", "f", "0644"),
	S(R, "chown", "f", "1000", "1000"),
	S(U1, "chown", "f", "1001", "-1"),
	S(U1, "chown", "f", "-1", "2000"),
	S(U1X, "chown", "f", "-1", "2000"),
	S(U2, "chown", "f", "1001", "1001"),
	S(U1, "chown", "f", "-1", "-1"),
	S(R, "chmod", "f", "06755"),
	S(U1X, "chown", "f", "1000", "1000"),   /* owner, same ids: set-id bits go */
	S(R, "chmod", "f", "06755"),
	S(R, "chown", "f", "1000", "1000"),     /* root too, for a file */
	S(R, "chmod", "f", "06745"),
	S(R, "chown", "f", "1001", "-1"),       /* group-exec off: set-gid stays */
	S(R, "chmod", "f", "06700"),
	S(R, "chown", "f", "-1", "-1"),
	S(R, "mkdir", "d", "0755"),
	S(R, "chmod", "d", "06755"),
	S(R, "chown", "d", "1000", "1000"),     /* a directory keeps them */
	S(R, "symlink", "f", "l"),
	S(R, "lchown", "l", "1001", "1001"),
	S(R, "chown", "l", "1002", "1002"),     /* follows the link */
	S(R, "chown", "missing", "0", "0"),
	S(R, "chown", "f/x", "0", "0"),
	S(U1, "lchown", "l", "1000", "1000"),
};

static const struct step link_steps[] = {
	S(R, "chmod", ".", "0777"),
	S(R, "create", "f", "0644"),
	S(R, "link", "f", "g"),
	S(R, "link", "f", "h"),
	S(R, "link", "f", "g"),
	S(R, "link", "missing", "x"),
	S(R, "mkdir", "d", "0755"),
	S(R, "link", "d", "d2"),
	S(R, "link", "f", "nodir/x"),
	S(R, "link", "f", "f/x"),
	S(R, "link", "f", "d/f"),
	S(R, "unlink", "f"),
	S(R, "unlink", "g"),
	S(R, "stat", "h"),
	S(R, "chmod", "h", "0600"),
	S(U2, "link", "h", "u2link"),           /* fs.protected_hardlinks */
	S(R, "chown", "h", "1001", "1001"),
	S(U2, "link", "h", "u2link"),
	S(R, "chmod", "d", "0555"),
	S(U1, "link", "h", "d/x"),
	S(R, "symlink", "h", "s"),
	S(R, "link", "s", "s2"),                /* links the symlink itself */
	S(R, "link", "h", "@N255"),
	S(R, "link", "h", "@N256"),
	S(R, "mkfifo", "p", "0644"),
	S(R, "link", "p", "p2"),
};

static const struct step mkdir_steps[] = {
	S(R, "mkdir", "d", "0755"),
	S(R, "mkdir", "d", "0755"),
	S(R, "mkdir", "d/e", "0700"),
	S(R, "mkdir", "d/x/y", "0755"),
	S(R, "create", "f", "0644"),
	S(R, "mkdir", "f/x", "0755"),
	S(R, "mkdir", "m", "07777"),
	S(U1, "mkdir", "u", "0755"),
	S(R, "chmod", ".", "0777"),
	S(U1, "mkdir", "u", "0755"),
	S(R, "mkdir", "s", "0775"),
	S(R, "chown", "s", "0", "2000"),
	S(R, "chmod", "s", "02775"),
	S(U1X, "mkdir", "s/sub", "0755"),       /* inherits group and set-gid */
	S(U1X, "create", "s/file", "02755"),
	S(U1, "mkdir", "s/no", "0755"),
	S(R, "mkdir", "@N255", "0755"),
	S(R, "mkdir", "@N256", "0755"),
	S(R, "mkdir", "@D1", "0755"),
	S(R, "mkdir", "@D2", "0755"),
	S(R, "mkdir", "@D15/x", "0755"),
	S(R, "mkdir", "@D17/x", "0755"),
	S(R, "symlink", "d", "l"),
	S(R, "mkdir", "l", "0755"),
	S(R, "mkdir", "l/sub", "0755"),
	S(R, "rmdir", "d/e"),
	S(R, "stat", "d"),
};

static const struct step mkfifo_steps[] = {
	S(R, "mkfifo", "p", "0644"),
	S(R, "mkfifo", "p", "0644"),
	S(R, "mkfifo", "q", "07777"),
	S(U1, "mkfifo", "u", "0644"),
	S(R, "chmod", ".", "0777"),
	S(U1, "mkfifo", "u", "0640"),
	S(R, "open", "p", "O_WRONLY|O_NONBLOCK"),
	S(R, "open", "p", "O_RDONLY|O_NONBLOCK"),
	S(R, "mkfifo", "missing/p", "0644"),
	S(R, "mkfifo", "@N256", "0644"),
	S(R, "chown", "u", "0", "0"),
	S(R, "unlink", "p"),
};

static const struct step mknod_steps[] = {
	S(R, "mknod", "r", "reg", "0644"),
	S(R, "mknod", "p", "fifo", "0600"),
	S(R, "mknod", "s", "sock", "0600"),
	S(R, "mknod", "w", "chr", "0000", "0", "0"),   /* an overlayfs whiteout */
	S(R, "mknod", "r", "reg", "0644"),
	S(R, "chmod", ".", "0777"),
	S(U1, "mknod", "u", "fifo", "0644"),
	S(U1, "mknod", "v", "reg", "04755"),
	S(R, "mknod", "x/y", "fifo", "0644"),
	S(R, "unlink", "w"),
};

/* Block and character devices: refused without the share's dev-nodes
 * option (the difference tests/fuse/test_posix.sh expects then). */
static const struct step devices_steps[] = {
	S(R, "chmod", ".", "0777"),
	S(R, "mknod", "b", "blk", "0600", "7", "200"),
	S(R, "mknod", "c", "chr", "0644", "1", "3"),
	S(U1, "mknod", "u", "chr", "0644", "1", "3"),
	S(R, "mknod", "b", "blk", "0600", "7", "200"),
	S(R, "chown", "c", "1000", "1000"),
	S(R, "chmod", "c", "0600"),
	S(R, "link", "c", "c2"),
	S(R, "rename", "c2", "c3"),
	S(R, "unlink", "c3"),
	S(R, "unlink", "c"),
	S(R, "rename", "b", "b2"),
	S(R, "unlink", "b2"),
};

static const struct step open_steps[] = {
	S(R, "open", "f", "O_RDONLY"),
	S(R, "open", "f", "O_CREAT|O_WRONLY", "0644"),
	S(R, "open", "f", "O_CREAT|O_EXCL|O_WRONLY", "0644"),
	S(R, "write", "f", "hello"),
	S(R, "open", "f", "O_CREAT|O_WRONLY", "0600"),    /* exists: mode unchanged */
	S(R, "open", "f", "O_WRONLY|O_TRUNC"),
	S(R, "write", "f", "hello"),
	S(R, "open", "f", "O_RDONLY"),
	S(R, "open", "f", "O_RDONLY|O_TRUNC"),
	S(R, "append", "f", "abc"),
	S(R, "append", "f", "de"),
	S(R, "write", "f", "X"),
	S(R, "read", "f"),
	S(R, "mkdir", "d", "0755"),
	S(R, "open", "d", "O_WRONLY"),
	S(R, "open", "d", "O_RDWR"),
	S(R, "open", "d", "O_RDONLY|O_DIRECTORY"),
	S(R, "open", "f", "O_RDONLY|O_DIRECTORY"),
	S(R, "open", "d", "O_CREAT|O_RDONLY", "0644"),
	S(R, "open", "f/x", "O_RDONLY"),
	S(R, "symlink", "f", "l"),
	S(R, "open", "l", "O_RDONLY|O_NOFOLLOW"),
	S(R, "open", "l", "O_RDONLY"),
	S(R, "open", "l", "O_CREAT|O_EXCL|O_WRONLY", "0644"),
	S(R, "open", "l", "O_PATH|O_NOFOLLOW"),
	S(R, "symlink", "nowhere", "dl"),
	S(R, "open", "dl", "O_CREAT|O_WRONLY", "0640"),    /* creates the target */
	S(R, "stat", "nowhere"),
	S(R, "symlink", "a", "b"),
	S(R, "symlink", "b", "a"),
	S(R, "open", "a", "O_RDONLY"),
	S(R, "open", "a/x", "O_RDONLY"),
	S(R, "chown", "f", "1000", "1000"),
	S(R, "chmod", "f", "0600"),
	S(U2, "open", "f", "O_RDONLY"),
	S(U1, "open", "f", "O_RDWR"),
	S(R, "chmod", "f", "0200"),
	S(U1, "open", "f", "O_RDONLY"),
	S(U1, "open", "f", "O_WRONLY|O_APPEND"),
	S(R, "chmod", "f", "0000"),
	S(R, "open", "f", "O_RDWR"),
	S(U1, "open", "g", "O_CREAT|O_WRONLY", "0644"),
	S(R, "chmod", ".", "0777"),
	S(U1, "open", "g", "O_CREAT|O_WRONLY", "06755"),
	S(U1, "open", "@N255", "O_CREAT|O_WRONLY", "0644"),
	S(U1, "open", "@N256", "O_CREAT|O_WRONLY", "0644"),
	S(R, "chmod", "d", "0700"),
	S(U1, "open", "d/x", "O_CREAT|O_WRONLY", "0644"),
	S(R, "chown", "g", "0", "0"),
	S(U1, "open", "g", "O_WRONLY|O_TRUNC"),
	S(U1, "open", "f", "O_RDONLY|O_NOATIME"),
	S(R, "open", "f", "O_RDONLY|O_NOATIME"),
};

static const struct step tmpfile_steps[] = {
	S(R, "tmpfile", ".", "0600"),
	S(R, "tmpfile", ".", "0644", "t1"),
	S(R, "tmpfile", ".", "0644", "t2", "excl"),
	S(R, "create", "f", "0644"),
	S(R, "tmpfile", "f", "0600"),
	S(R, "tmpfile", "missing", "0600"),
	S(U1, "tmpfile", ".", "0600"),
	S(R, "chmod", ".", "0777"),
	S(U1, "tmpfile", ".", "0640", "u1"),
	S(R, "mkdir", "s", "02777"),
	S(R, "chown", "s", "0", "2000"),
	S(U1, "tmpfile", "s", "0640", "s/u"),
	S(R, "tmpfile", ".", "0600", "t1"),
};

static const struct step rename_steps[] = {
	S(R, "chmod", ".", "0777"),
	S(R, "create", "a", "0644"),
	S(R, "rename", "a", "b"),
	S(R, "rename", "a", "c"),
	S(R, "create", "c", "0600"),
	S(R, "link", "c", "c2"),
	S(R, "rename", "b", "c"),                /* replaces: c2's count drops */
	S(R, "rename", "c", "c"),
	S(R, "rename", "c", "c2"),               /* the same inode: nothing */
	S(R, "mkdir", "d", "0755"),
	S(R, "mkdir", "e", "0755"),
	S(R, "rename", "d", "e"),                /* empty dir over empty dir */
	S(R, "mkdir", "d", "0755"),
	S(R, "create", "e/x", "0644"),
	S(R, "rename", "d", "e"),                /* over a non-empty one */
	S(R, "rename", "c", "e"),                /* file over dir */
	S(R, "rename", "e", "c"),                /* dir over file */
	S(R, "rename", "e", "e/sub"),            /* into its own subtree */
	S(R, "rename", "e", "d/e"),              /* into another dir: counts move */
	S(R, "rename", "d/e", "."),
	S(R, "rename", ".", "z"),
	S(R, "rename", "missing", "z"),
	S(R, "rename", "c", "missing/z"),
	S(R, "rename", "c", "c/x"),
	S(R, "rename", "c", "@N255"),
	S(R, "rename", "@N255", "@N256"),
	S(R, "symlink", "d", "l"),
	S(R, "rename", "l", "l2"),               /* the link, not its target */
	S(R, "create", "n1", "0644"),
	S(R, "create", "n2", "0600"),
	S(R, "rename2", "n1", "n2", "noreplace"),
	S(R, "rename2", "n1", "n3", "noreplace"),
	S(R, "rename2", "n3", "d", "exchange"),
	S(R, "rename2", "n2", "missing", "exchange"),
	S(R, "rename2", "d", "d/e", "exchange"),
	S(R, "mkdir", "st", "01777"),
	S(U1, "create", "st/u1", "0644"),
	S(U2, "create", "st/u2", "0644"),
	S(U2, "rename", "st/u1", "st/x"),        /* sticky: not the owner */
	S(U2, "rename", "st/u2", "st/u1"),       /* nor may it replace u1's */
	S(U1, "rename", "st/u1", "st/u1b"),
	S(R, "rename", "st/u2", "st/u1b"),
	S(R, "mkdir", "ro", "0555"),
	S(R, "create", "ro/f", "0644"),
	S(U1, "rename", "ro/f", "g"),
	S(R, "mkdir", "sd", "0777"),
	S(R, "mkdir", "sd/in", "0755"),
	S(U1, "rename", "sd/in", "in2"),         /* a dir needs write in itself (..) */
	S(R, "mkfifo", "fifo", "0644"),
	S(R, "rename", "fifo", "fifo2"),
};

static const struct step unlink_steps[] = {
	S(R, "create", "f", "0644"),
	S(R, "link", "f", "g"),
	S(R, "unlink", "f"),
	S(R, "unlink", "f"),
	S(R, "mkdir", "d", "0755"),
	S(R, "unlink", "d"),
	S(R, "unlink", "g/x"),
	S(R, "symlink", "g", "l"),
	S(R, "unlink", "l"),
	S(R, "stat", "g"),
	S(U1, "unlink", "g"),
	S(R, "mkdir", "st", "01777"),
	S(U1, "create", "st/u1", "0666"),
	S(U2, "unlink", "st/u1"),
	S(R, "chown", "st", "1001", "1001"),
	S(U2, "unlink", "st/u1"),                /* the directory's owner may */
	S(R, "mkdir", "st2", "01777"),
	S(U1, "create", "st2/f", "0666"),
	S(R, "unlink", "st2/f"),
	S(R, "unlink", "@N256"),
	S(R, "unlink", "."),
	S(R, "mkfifo", "p", "0644"),
	S(R, "unlink", "p"),
};

static const struct step rmdir_steps[] = {
	S(R, "mkdir", "d", "0755"),
	S(R, "mkdir", "d/e", "0755"),
	S(R, "rmdir", "d"),
	S(R, "rmdir", "d/e"),
	S(R, "rmdir", "d"),
	S(R, "rmdir", "d"),
	S(R, "create", "f", "0644"),
	S(R, "rmdir", "f"),
	S(R, "rmdir", "f/x"),
	S(R, "mkdir", "x", "0755"),
	S(R, "rmdir", "x/."),
	S(R, "rmdir", "x/.."),
	S(R, "symlink", "x", "l"),
	S(R, "rmdir", "l"),
	S(R, "mkdir", "st", "01777"),
	S(U1, "mkdir", "st/u1", "0755"),
	S(U2, "rmdir", "st/u1"),
	S(U1, "rmdir", "st/u1"),
	S(R, "mkdir", "ro", "0755"),
	S(R, "mkdir", "ro/in", "0777"),
	S(U1, "rmdir", "ro/in"),
	S(R, "rmdir", "@N256"),
};

static const struct step symlink_steps[] = {
	S(R, "symlink", "target", "l"),
	S(R, "readlink", "l"),
	S(R, "symlink", "other", "l"),
	S(R, "symlink", "@N255", "l2"),
	S(R, "readlink", "l2"),
	S(R, "symlink", "x", "@N256"),
	S(R, "symlink", "x", "missing/l"),
	S(R, "create", "f", "0644"),
	S(R, "symlink", "x", "f/l"),
	S(R, "readlink", "f"),
	S(R, "readlink", "missing"),
	S(U1, "symlink", "x", "u"),
	S(R, "chmod", ".", "0777"),
	S(U1, "symlink", "f", "u"),
	S(R, "symlink", "/absolute/target", "abs"),
	S(R, "readlink", "abs"),
	S(R, "lchown", "abs", "1000", "2000"),
	S(R, "symlink", "loop2", "loop1"),
	S(R, "symlink", "loop1", "loop2"),
	S(R, "stat", "loop1"),
	S(R, "open", "loop1", "O_RDONLY"),
	S(R, "mkdir", "d", "0755"),
	S(R, "symlink", "d", "ld"),
	S(R, "open", "ld/new", "O_CREAT|O_WRONLY", "0644"),
	S(R, "readdir", "ld"),
};

static const struct step truncate_steps[] = {
	S(R, "create", "f", "0644"),
	S(R, "truncate", "f", "1000"),
	S(R, "truncate", "f", "1000"),           /* same size: times still change */
	S(R, "truncate", "f", "10"),
	S(R, "ftruncate", "f", "0"),
	S(R, "truncate", "f", "-1"),
	S(R, "truncate", "missing", "0"),
	S(R, "mkdir", "d", "0755"),
	S(R, "truncate", "d", "0"),
	S(R, "truncate", "f/x", "0"),
	S(R, "chown", "f", "1000", "1000"),
	S(U2, "truncate", "f", "5"),
	S(U1, "truncate", "f", "5"),
	S(R, "chmod", "f", "0444"),
	S(U1, "truncate", "f", "7"),
	S(R, "truncate", "f", "7"),
	S(R, "symlink", "f", "l"),
	S(R, "truncate", "l", "3"),
	S(R, "truncate", "@N256", "0"),
};

/* utimensat: values, UTIME_NOW and UTIME_OMIT, and who may set which. */
static const struct step utimens_steps[] = {
	S(R, "create", "f", "0644"),
	S(R, "utimens", "f", "100000000", "200000000"),
	S(R, "times", "f"),
	S(R, "utimens", "f", "omit", "300000000"),
	S(R, "times", "f"),
	S(R, "utimens", "f", "400000000", "omit"),
	S(R, "times", "f"),
	S(R, "utimens", "f", "omit", "omit"),
	S(R, "utimens", "f", "now", "omit"),
	S(R, "times", "f"),
	S(R, "utimens", "f", "omit", "now"),
	S(R, "utimens", "f", "null"),
	S(R, "times", "f"),
	S(R, "chown", "f", "1000", "1000"),
	S(U2, "utimens", "f", "now", "now"),      /* neither owner nor writer */
	S(U2, "utimens", "f", "null"),
	S(U2, "utimens", "f", "1", "1"),
	S(U1, "utimens", "f", "500000000", "600000000"),
	S(R, "chmod", "f", "0666"),
	S(U2, "utimens", "f", "now", "now"),      /* a writer may set "now" */
	S(U2, "utimens", "f", "null"),
	S(U2, "utimens", "f", "1", "1"),          /* but not a value */
	S(U2, "utimens", "f", "omit", "omit"),
	S(R, "symlink", "f", "l"),
	S(R, "utimens", "l", "700000000", "800000000", "nofollow"),
	S(R, "times", "l"),
	S(R, "times", "f"),
	S(R, "utimens", "l", "7", "8"),
	S(R, "times", "f"),
	S(R, "utimens", "missing", "now", "now"),
	S(R, "mkdir", "d", "0755"),
	S(R, "utimens", "d", "900000000", "900000001"),
	S(R, "times", "d"),
	S(R, "create", "d/x", "0644"),            /* the directory's times move */
	S(R, "utimens", "f", "-100", "1"),
	S(R, "times", "f"),
};

/* Set-user-id and set-group-id cleared by an unprivileged write, truncate,
 * open(O_TRUNC) and chown, kept for root's writes and when group-execute
 * is off. */
static const struct step killpriv_steps[] = {
	S(R, "chmod", ".", "0777"),
	S(R, "create", "a", "06777"),
	S(U1, "write", "a", "x"),
	S(R, "create", "b", "02777"),
	S(U1, "append", "b", "x"),
	S(R, "create", "c", "04777"),
	S(U1, "truncate", "c", "5"),
	S(R, "create", "e", "02767"),
	S(R, "chown", "e", "0", "1000"),
	S(U1, "write", "e", "x"),                 /* no group-exec, a member: kept */
	S(R, "create", "g", "06777"),
	S(R, "write", "g", "x"),
	S(R, "truncate", "g", "0"),
	S(R, "create", "h", "06777"),
	S(U1, "ftruncate", "h", "3"),
	S(R, "create", "i", "06755"),
	S(R, "chown", "i", "1000", "1000"),
	S(R, "chmod", "i", "06755"),
	S(U1, "write", "i", "owner"),
	S(R, "create", "j", "06777"),
	S(U1, "write", "j", ""),                  /* nothing written: kept */
	S(R, "mkdir", "dir", "06777"),
	S(U1, "create", "dir/x", "0644"),
	S(R, "stat", "dir"),
};

/* open(O_TRUNC) by a caller without CAP_FSETID: the set-id bits go, in
 * the same change as the truncation. */
static const struct step killpriv_trunc_steps[] = {
	S(R, "chmod", ".", "0777"),
	S(R, "create", "d", "06777"),
	S(U1, "open", "d", "O_WRONLY|O_TRUNC"),
	S(R, "create", "e", "04777"),
	S(R, "write", "e", "data"),
	S(U1, "open", "e", "O_WRONLY|O_TRUNC"),
	S(R, "create", "g", "04777"),
	S(R, "write", "g", "data"),
	S(U1, "open", "g", "O_RDONLY|O_TRUNC"),    /* Linux truncates that too */
};

/* Permission checks on the path and in directories. */
static const struct step perms_steps[] = {
	S(R, "mkdir", "d", "0700"),
	S(R, "create", "d/f", "0644"),
	S(U1, "stat", "d/f"),
	S(U1, "open", "d/f", "O_RDONLY"),
	S(U1, "access", "d/f", "r"),
	S(R, "chmod", "d", "0711"),
	S(U1, "open", "d/f", "O_RDONLY"),
	S(U1, "readdir", "d"),
	S(U1, "access", "d/f", "rw"),
	S(R, "chmod", "d", "0744"),
	S(U1, "open", "d/f", "O_RDONLY"),
	S(U1, "readdir", "d"),
	S(R, "chmod", "d", "0755"),
	S(R, "chown", "d/f", "0", "1000"),
	S(R, "chmod", "d/f", "0460"),
	S(U1, "open", "d/f", "O_RDWR"),            /* the group's bits: no read */
	S(U1, "open", "d/f", "O_WRONLY"),
	S(R, "chown", "d/f", "1000", "1000"),
	S(U1, "open", "d/f", "O_RDONLY"),          /* owner's bits first */
	S(U1, "access", "d/f", "w"),
	S(R, "chmod", "d/f", "0000"),
	S(R, "access", "d/f", "rw"),
	S(R, "access", "d/f", "x"),
	S(R, "chmod", "d/f", "0001"),
	S(R, "access", "d/f", "x"),
	S(U1X, "create", "d/g", "0644"),
	S(R, "chmod", "d", "0775"),
	S(R, "chown", "d", "0", "2000"),
	S(U1X, "create", "d/g", "0644"),           /* a supplementary group's bits */
	S(U1, "create", "d/h", "0644"),
	S(U1X, "unlink", "d/g"),
};

static const struct category categories[] = {
	CATEGORY(chmod),   CATEGORY(chown),   CATEGORY(link),    CATEGORY(mkdir),
	CATEGORY(mkfifo),  CATEGORY(mknod),   CATEGORY(devices), CATEGORY(open),
	CATEGORY(tmpfile), CATEGORY(rename),  CATEGORY(unlink),  CATEGORY(rmdir),
	CATEGORY(symlink), CATEGORY(truncate), CATEGORY(utimens), CATEGORY(killpriv),
	CATEGORY(killpriv_trunc), CATEGORY(perms),
};
