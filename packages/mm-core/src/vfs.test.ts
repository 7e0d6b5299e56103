import { describe, expect, it } from 'vitest';
import {
  EBUSY,
  EEXIST,
  EINVAL,
  EISDIR,
  ENODEV,
  ENOENT,
  ENOTDIR,
  ENOTEMPTY,
  EROFS,
  MAP_SHARED,
  O_CREAT,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  PAGE_SIZE,
  PROT_READ,
  SEEK_CUR,
  SEEK_END,
  SEEK_SET,
} from './constants.js';
import { machine } from './testing/helpers.js';

const enc = (s: string) => new TextEncoder().encode(s);

describe('tmpfs namespace: mkdir, rmdir, unlink (fs/namei.c)', () => {
  it('mkdir needs its parent; rmdir needs an empty directory; open(O_CREAT) needs the directory', () => {
    const k = machine();
    const p = k.spawn();
    expect(p.mkdir('/tmp/a/b')).toBe(-ENOENT);
    expect(p.open('/tmp/a/f', O_CREAT | O_RDWR)).toBe(-ENOENT);
    expect(p.mkdir('/tmp/a')).toBe(0);
    expect(p.mkdir('/tmp/a')).toBe(-EEXIST);
    expect(p.mkdir('/usr/x')).toBe(-EROFS);
    const fd = p.open('/tmp/a/f', O_CREAT | O_RDWR);
    expect(fd).toBeGreaterThanOrEqual(0);
    expect(p.mkdir('/tmp/a/f/g')).toBe(-ENOTDIR);
    expect(p.rmdir('/tmp/a')).toBe(-ENOTEMPTY);
    expect(p.rmdir('/tmp/a/f')).toBe(-ENOTDIR);
    expect(p.rmdir('/tmp')).toBe(-EBUSY);
    expect(p.open('/tmp/a', O_RDONLY)).toBe(-EISDIR);
    expect(p.unlink('/tmp/a')).toBe(-EISDIR);
    p.close(fd);
    expect(p.unlink('/tmp/a/f')).toBe(0);
    expect(p.unlink('/tmp/a/f')).toBe(-ENOENT);
    expect(p.rmdir('/tmp/a')).toBe(0);
    expect(p.rmdir('/tmp/a')).toBe(-ENOENT);
  });

  it('unlink of an open, mapped file keeps its data until the last reference goes (iput())', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/keep', O_CREAT | O_RDWR);
    expect(p.write(fd, enc('hello'), 5)).toBe(5);
    const a = p.mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    const before = k.core.vmstat.nr_shmem;
    expect(p.unlink('/tmp/keep')).toBe(0);
    expect(p.open('/tmp/keep', O_RDONLY)).toBe(-ENOENT);
    p.close(fd);
    expect(p.readBytes(a, 5)).toEqual(enc('hello'));
    expect(k.core.vmstat.nr_shmem).toBe(before);
    p.munmap(a, PAGE_SIZE);
    expect(k.core.vmstat.nr_shmem).toBe(before - 1);
  });
});

describe('tmpfs mounts (do_new_mount(), shmem_parse_one(), do_umount())', () => {
  it('mounts on an existing directory with huge= and size= options; umount frees the instance', () => {
    const k = machine();
    const p = k.spawn();
    expect(p.mount('tmpfs', '/tmp/m', 'tmpfs', 0, 'huge=always,size=4m')).toBe(-ENOENT);
    expect(p.mkdir('/tmp/m')).toBe(0);
    expect(p.mount('tmpfs', '/tmp/m', 'ext4', 0, '')).toBe(-ENODEV);
    expect(p.mount('tmpfs', '/tmp/m', 'tmpfs', 0, 'huge=sometimes')).toBe(-EINVAL);
    expect(p.mount('tmpfs', '/tmp/m', 'tmpfs', 0, 'size=4q')).toBe(-EINVAL);
    expect(p.mount('tmpfs', '/tmp/m', 'tmpfs', 0, 'colour=blue')).toBe(-EINVAL);
    expect(p.mount('tmpfs', '/tmp/m', 'tmpfs', 0, 'huge=always,size=4m')).toBe(0);
    expect(k.ns.mounts.get('/tmp/m')).toEqual({ huge: 'always', maxPages: 1024 });
    expect(p.rmdir('/tmp/m')).toBe(-EBUSY);
    const fd = p.open('/tmp/m/f', O_CREAT | O_RDWR);
    expect(p.write(fd, new Uint8Array(2 * PAGE_SIZE).fill(9), 2 * PAGE_SIZE)).toBe(2 * PAGE_SIZE);
    expect(p.umount('/tmp/m')).toBe(-EBUSY);
    p.close(fd);
    const shmem = k.core.vmstat.nr_shmem;
    expect(p.umount('/tmp/m')).toBe(0);
    expect(k.core.vmstat.nr_shmem).toBe(shmem - 2);
    expect(p.open('/tmp/m/f', O_RDONLY)).toBe(-ENOENT);
    expect(p.umount('/tmp/m')).toBe(-EINVAL);
    expect(p.rmdir('/tmp/m')).toBe(0);
  });
});

describe('write(2), read(2), lseek(2) at the file position (ksys_write(), ksys_read())', () => {
  it('advance the position; lseek sets it from the start, the current position or the end', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/tmp/pos', O_CREAT | O_RDWR);
    for (let i = 0; i < 4; i++) expect(p.write(fd, enc(`${i}abc`), 4)).toBe(4);
    expect(p.lseek(fd, 0, SEEK_CUR)).toBe(16);
    expect(p.lseek(fd, -6, SEEK_END)).toBe(10);
    const b = new Uint8Array(6);
    expect(p.read(fd, b, 6)).toBe(6);
    expect(new TextDecoder().decode(b)).toBe('bc3abc');
    expect(p.read(fd, b, 6)).toBe(0);
    expect(p.lseek(fd, -1, SEEK_SET)).toBe(-EINVAL);
    expect(p.lseek(fd, 0, 7)).toBe(-EINVAL);
    expect(p.lseek(fd, 4, SEEK_SET)).toBe(4);
    expect(p.read(fd, b, 4)).toBe(4);
    expect(new TextDecoder().decode(b.subarray(0, 4))).toBe('1abc');
    p.close(fd);
  });

  it('/proc/sys/vm/drop_caches takes 1..4 (proc_dointvec_minmax())', () => {
    const k = machine();
    const p = k.spawn();
    const fd = p.open('/proc/sys/vm/drop_caches', O_WRONLY);
    expect(p.write(fd, enc('3'), 1)).toBe(1);
    expect(p.pwrite(fd, enc('0\n'), 2, 0)).toBe(-EINVAL);
    expect(p.pwrite(fd, enc('5'), 1, 0)).toBe(-EINVAL);
    expect(p.pwrite(fd, enc('x'), 1, 0)).toBe(-EINVAL);
    p.close(fd);
  });
});
