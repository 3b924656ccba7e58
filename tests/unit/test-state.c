/*
 * Durable state files (daemon/core/state.c): atomic replacement, the mode, no
 * temp file left over, the old file intact on every failure (missing
 * directory, rename refused, disk full), reading JSON back, and creating
 * the state directory.
 *
 * The disk-full case mounts a 64 KiB tmpfs in a private mount namespace,
 * which needs root (CAP_SYS_ADMIN); without it the case is skipped.
 */
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state.h"
#include "tap.h"

static char	 top[] = "/tmp/opsd-test-state.XXXXXX";
static int	 ncase;

/* A fresh directory for one case. */
static const char *
casedir(void)
{
	static char	dir[256];

	snprintf(dir, sizeof dir, "%s/c%d", top, ++ncase);
	if (mkdir(dir, 0755) == -1)
		tap_diag("mkdir %s: %s", dir, strerror(errno));
	return (dir);
}

static void
put(const char *dir, const char *name, const char *text)
{
	char	 path[512];
	FILE	*f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL) {
		tap_diag("cannot create %s: %s", path, strerror(errno));
		return;
	}
	fputs(text, f);
	fclose(f);
}

/* Whole content of dir/name, or NULL; free() it. */
static char *
slurp(const char *dir, const char *name)
{
	char	 path[512], *buf;
	FILE	*f;
	long	 n;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((f = fopen(path, "r")) == NULL)
		return (NULL);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	buf[n] = '\0';
	fclose(f);
	return (buf);
}

static mode_t
mode_of(const char *dir, const char *name)
{
	struct stat	st;
	char		path[512];

	snprintf(path, sizeof path, "%s%s%s", dir, name ? "/" : "",
	    name ? name : "");
	if (stat(path, &st) == -1)
		return ((mode_t)-1);
	return (st.st_mode & 07777);
}

/* Number of entries in dir (without . and ..); names in diag if verbose. */
static int
count_entries(const char *dir, int verbose)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (verbose)
			tap_diag("  %s/%s", dir, de->d_name);
		n++;
	}
	closedir(d);
	return (n);
}

static void
check_entries(const char *dir, int want)
{
	int	n = count_entries(dir, 0);

	if (n != want) {
		tap_diag("%s holds %d entries, expected %d:", dir, n, want);
		count_entries(dir, 1);
	}
	CHECK_INT(n, want);
}

static void
test_write_new(void)
{
	const char	*dir = casedir();
	char		*s;

	CHECK_INT(state_write(dir, "a.json", "hello\n", 6, 0640), 0);
	s = slurp(dir, "a.json");
	CHECK_STR(s, "hello\n");
	free(s);
	CHECK_MODE(mode_of(dir, "a.json"), 0640);
	check_entries(dir, 1);

	/* empty content is content */
	CHECK_INT(state_write(dir, "empty", "", 0, 0600), 0);
	s = slurp(dir, "empty");
	CHECK_STR(s, "");
	free(s);
	check_entries(dir, 2);
}

static void
test_write_replaces(void)
{
	const char	*dir = casedir();
	struct stat	 before, after;
	char		 path[512], *s;

	put(dir, "a.json", "old content that is longer than the new\n");
	snprintf(path, sizeof path, "%s/a.json", dir);
	stat(path, &before);
	CHECK_INT(state_write(dir, "a.json", "new\n", 4, 0600), 0);
	s = slurp(dir, "a.json");
	CHECK_STR(s, "new\n");
	free(s);
	/* replaced by rename, not rewritten in place */
	stat(path, &after);
	CHECK(before.st_ino != after.st_ino);
	CHECK_MODE(mode_of(dir, "a.json"), 0600);
	check_entries(dir, 1);

	/* many replacements leave one file */
	for (int i = 0; i < 50; i++) {
		char	buf[32];

		snprintf(buf, sizeof buf, "v%d", i);
		CHECK_INT(state_write(dir, "a.json", buf, strlen(buf), 0600), 0);
	}
	s = slurp(dir, "a.json");
	CHECK_STR(s, "v49");
	free(s);
	check_entries(dir, 1);
}

static void
test_mode_applied(void)
{
	const char	*dir = casedir();
	mode_t		 old;

	/* the mode is set on the file, not filtered through the umask */
	old = umask(077);
	CHECK_INT(state_write(dir, "wide", "x", 1, 0644), 0);
	CHECK_MODE(mode_of(dir, "wide"), 0644);
	umask(022);
	CHECK_INT(state_write(dir, "narrow", "x", 1, 0600), 0);
	CHECK_MODE(mode_of(dir, "narrow"), 0600);
	CHECK_INT(state_write(dir, "none", "x", 1, 0), 0);
	CHECK_MODE(mode_of(dir, "none"), 0);
	/* replacing changes the mode too */
	CHECK_INT(state_write(dir, "wide", "y", 1, 0600), 0);
	CHECK_MODE(mode_of(dir, "wide"), 0600);
	umask(old);
	check_entries(dir, 3);
}

static void
test_bad_names(void)
{
	const char	*dir = casedir();

	CHECK_INT(state_write(dir, "a/b", "x", 1, 0600), -EINVAL);
	CHECK_INT(state_write(dir, ".hidden", "x", 1, 0600), -EINVAL);
	CHECK_INT(state_write(dir, "..", "x", 1, 0600), -EINVAL);
	CHECK(state_write(dir, "", "x", 1, 0600) != 0);
	check_entries(dir, 0);
}

static void
test_missing_dir(void)
{
	const char	*dir = casedir();
	char		 gone[512], *s;

	put(dir, "a.json", "old\n");
	snprintf(gone, sizeof gone, "%s/gone", dir);
	CHECK_INT(state_write(gone, "a.json", "new\n", 4, 0600), -ENOENT);
	s = slurp(dir, "a.json");
	CHECK_STR(s, "old\n");
	free(s);
	check_entries(dir, 1);
}

static void
test_rename_refused(void)
{
	const char	*dir = casedir();
	char		 sub[512], *s;

	/* the target is a non-empty directory: rename() fails late */
	snprintf(sub, sizeof sub, "%s/a.json", dir);
	mkdir(sub, 0755);
	put(sub, "keep", "old\n");
	CHECK(state_write(dir, "a.json", "new\n", 4, 0600) < 0);
	s = slurp(sub, "keep");
	CHECK_STR(s, "old\n");
	free(s);
	/* the temp file is gone */
	check_entries(dir, 1);
}

static int
mount_small_tmpfs(const char *dir, char *why, size_t whylen)
{
	/* a private namespace: the mount disappears with this process */
	if (unshare(CLONE_NEWNS) == 0)
		mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV,
	    "size=64k,mode=0755") == -1) {
		snprintf(why, whylen, "cannot mount a tmpfs on %s (%s); run as "
		    "root with CAP_SYS_ADMIN to test a full disk", dir,
		    strerror(errno));
		return (-1);
	}
	return (0);
}

static void
test_disk_full(void)
{
	const char	*dir = casedir();
	char		 why[256], *big, *s;
	size_t		 n = 256 * 1024;

	if (mount_small_tmpfs(dir, why, sizeof why) != 0) {
		tap_skip(why);
		return;
	}
	CHECK_INT(state_write(dir, "a.json", "old\n", 4, 0640), 0);
	big = malloc(n);
	memset(big, 'z', n);
	CHECK_INT(state_write(dir, "a.json", big, n, 0640), -ENOSPC);
	s = slurp(dir, "a.json");
	CHECK_STR(s, "old\n");
	free(s);
	CHECK_MODE(mode_of(dir, "a.json"), 0640);
	/* the partial temp file is removed, so the space is back */
	check_entries(dir, 1);
	CHECK_INT(state_write(dir, "a.json", big, 32 * 1024, 0640), 0);
	s = slurp(dir, "a.json");
	CHECK(s != NULL && strlen(s) == 32 * 1024);
	free(s);
	/* and a new file that does not fit leaves nothing behind */
	CHECK_INT(state_write(dir, "b.json", big, n, 0640), -ENOSPC);
	check_entries(dir, 1);
	free(big);
	umount2(dir, MNT_DETACH);
}

static void
test_write_json(void)
{
	const char	*dir = casedir();
	json_t		*o, *back;
	char		*s;
	int		 err = 1;

	o = json_pack("{s:i, s:s, s:[i, i]}", "b", 2, "a", "x\ny", "c", 1, 2);
	CHECK_INT(state_write_json(dir, "st.json", o), 0);
	s = slurp(dir, "st.json");
	/* sorted keys, indented, one trailing newline */
	CHECK_STR(s, "{\n  \"a\": \"x\\ny\",\n  \"b\": 2,\n  \"c\": [\n    1,\n"
	    "    2\n  ]\n}\n");
	free(s);
	CHECK_MODE(mode_of(dir, "st.json"), 0640);
	back = state_read_json(dir, "st.json", &err);
	CHECK_INT(err, 0);
	CHECK(back != NULL && json_equal(o, back));
	json_decref(back);
	json_decref(o);
	check_entries(dir, 1);
}

static void
test_read_json(void)
{
	const char	*dir = casedir();
	json_t		*o;
	int		 err;

	err = 1;
	o = state_read_json(dir, "missing.json", &err);
	CHECK(o == NULL);
	CHECK_INT(err, -ENOENT);

	put(dir, "corrupt.json", "{\"pid\": 12, \"clean");
	err = 1;
	o = state_read_json(dir, "corrupt.json", &err);
	CHECK(o == NULL);
	CHECK_INT(err, -EBADMSG);

	put(dir, "empty.json", "");
	err = 1;
	o = state_read_json(dir, "empty.json", &err);
	CHECK(o == NULL);
	CHECK_INT(err, -EBADMSG);

	put(dir, "dup.json", "{\"a\": 1, \"a\": 2}");
	err = 1;
	o = state_read_json(dir, "dup.json", &err);
	CHECK(o == NULL);
	CHECK_INT(err, -EBADMSG);

	put(dir, "ok.json", "{\"clean_shutdown\": true}\n");
	err = 1;
	o = state_read_json(dir, "ok.json", &err);
	CHECK(json_is_true(json_object_get(o, "clean_shutdown")));
	CHECK_INT(err, 0);
	json_decref(o);

	err = 1;
	o = state_read_json("/nonexistent-opsd-dir", "ok.json", &err);
	CHECK(o == NULL);
	CHECK_INT(err, -ENOENT);
}

static void
test_mkdir(void)
{
	const char	*dir = casedir();
	char		 path[512];
	mode_t		 old;

	old = umask(022);
	snprintf(path, sizeof path, "%s/a/b/c", dir);
	CHECK_INT(state_mkdir(path, 0750), 0);
	CHECK_MODE(mode_of(path, NULL), 0750);
	snprintf(path, sizeof path, "%s/a", dir);
	CHECK_MODE(mode_of(path, NULL), 0755);
	/* already there: fine, and left as it is */
	snprintf(path, sizeof path, "%s/a/b/c", dir);
	CHECK_INT(state_mkdir(path, 0700), 0);
	CHECK_MODE(mode_of(path, NULL), 0750);
	/* a relative path works too */
	CHECK_INT(chdir(dir), 0);
	CHECK_INT(state_mkdir("rel/x", 0700), 0);
	CHECK_MODE(mode_of(dir, "rel/x"), 0700);
	CHECK_INT(chdir("/"), 0);
	/* a file in the way of a parent */
	put(dir, "file", "x");
	snprintf(path, sizeof path, "%s/file/sub", dir);
	CHECK_INT(state_mkdir(path, 0750), -ENOTDIR);
	umask(old);
}

static void
test_mkdir_existing_file(void)
{
	const char	*dir = casedir();
	char		 path[512];

	/*
	 * The path itself is a regular file: mkdir() fails with EEXIST,
	 * which state_mkdir() takes for "already there" and returns 0, so
	 * the daemon starts and only fails later on its first state write.
	 */
	put(dir, "state", "not a directory");
	snprintf(path, sizeof path, "%s/state", dir);
	CHECK(state_mkdir(path, 0750) != 0);
}

static void
test_mkdir_trailing_slash(void)
{
	const char	*dir = casedir();
	char		 path[512];
	mode_t		 old;

	/*
	 * "state_dir = /var/lib/opsd/" is a valid path. The loop creates
	 * the last directory when it meets the trailing '/', with the
	 * parents' 0755, and the final mkdir() then only sees EEXIST: the
	 * state directory ends up world-readable instead of 0750.
	 */
	old = umask(022);
	snprintf(path, sizeof path, "%s/st/", dir);
	CHECK_INT(state_mkdir(path, 0750), 0);
	snprintf(path, sizeof path, "%s/st", dir);
	CHECK_MODE(mode_of(path, NULL), 0750);
	umask(old);
}

static void
test_mkdir_empty(void)
{
	/*
	 * An empty path is an error, and is refused without reading past
	 * the end of it (the loop starts at s + 1, one past the copy of "").
	 * Last in this file: under ASan an over-read ends the program.
	 */
	CHECK(state_mkdir("", 0750) != 0);
}

static void
cleanup(void)
{
	char	cmd[300];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
	if (system(cmd) != 0)
		tap_diag("cannot remove %s", top);
}

int
main(void)
{
	if (mkdtemp(top) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return (1);
	}
	RUN(test_write_new);
	RUN(test_write_replaces);
	RUN(test_mode_applied);
	RUN(test_bad_names);
	RUN(test_missing_dir);
	RUN(test_rename_refused);
	RUN(test_disk_full);
	RUN(test_write_json);
	RUN(test_read_json);
	RUN(test_mkdir);
	RUN(test_mkdir_existing_file);
	RUN(test_mkdir_trailing_slash);
	RUN(test_mkdir_empty);	/* keep last */
	cleanup();
	return (tap_done());
}
