-- DB Sage stand-in for uuid-ossp 1.1, for PostgreSQL servers built without the module (the embedded
-- PostgreSQL 18 wheel has no uuid-ossp). Same function names and types as the module. Tested against
-- the real uuid-ossp on PostgreSQL 15 (tests/test_platform_baseline.py): the name-based v3 and v5 UUIDs are
-- identical; v1, v1mc and v4 have the same layout (version, variant, v1 timestamp). One difference: the real
-- uuid_generate_v1() puts the machine's MAC address in the node field; this one uses a random node with the
-- multicast bit set, exactly like uuid_generate_v1mc() (RFC 4122 section 4.5).

create function @extschema@.uuid_nil() returns uuid
language sql immutable strict parallel safe as $$ select '00000000-0000-0000-0000-000000000000'::uuid $$;
create function @extschema@.uuid_ns_dns() returns uuid
language sql immutable strict parallel safe as $$ select '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::uuid $$;
create function @extschema@.uuid_ns_url() returns uuid
language sql immutable strict parallel safe as $$ select '6ba7b811-9dad-11d1-80b4-00c04fd430c8'::uuid $$;
create function @extschema@.uuid_ns_oid() returns uuid
language sql immutable strict parallel safe as $$ select '6ba7b812-9dad-11d1-80b4-00c04fd430c8'::uuid $$;
create function @extschema@.uuid_ns_x500() returns uuid
language sql immutable strict parallel safe as $$ select '6ba7b814-9dad-11d1-80b4-00c04fd430c8'::uuid $$;

-- 16 hash bytes -> a UUID of the given version (RFC 4122 variant).
create function @extschema@._sage_uuid_from_hash(h bytea, version integer) returns uuid
language sql immutable strict parallel safe as $$
  select encode(set_byte(set_byte(substr(h, 1, 16), 6, (get_byte(h, 6) & 15) | (version << 4)),
                         8, (get_byte(h, 8) & 63) | 128), 'hex')::uuid
$$;

-- SHA-1 for v5 (PostgreSQL has sha224..sha512 built in, not sha1).
create function @extschema@._sage_uuid_sha1(data bytea) returns bytea
language plpgsql immutable strict parallel safe as $$
declare
  m32 constant bigint := 4294967295;
  h0 bigint := 1732584193;
  h1 bigint := 4023233417;
  h2 bigint := 2562383102;
  h3 bigint := 271733878;
  h4 bigint := 3285377520;
  msg bytea;
  w bigint[];
  a bigint; b bigint; c bigint; d bigint; e bigint; f bigint; k bigint; t bigint; x bigint;
  base int;
begin
  msg := data || '\x80'::bytea || decode(repeat('00', (119 - length(data) % 64) % 64), 'hex')
         || pg_catalog.int8send(length(data)::bigint * 8);
  for blk in 0 .. length(msg) / 64 - 1 loop
    w := array_fill(0::bigint, array[80]);
    for i in 0 .. 15 loop
      base := blk * 64 + i * 4;
      w[i + 1] := (get_byte(msg, base)::bigint << 24) | (get_byte(msg, base + 1)::bigint << 16)
                  | (get_byte(msg, base + 2)::bigint << 8) | get_byte(msg, base + 3)::bigint;
    end loop;
    for i in 16 .. 79 loop
      x := ((w[i - 2] # w[i - 7]) # w[i - 13]) # w[i - 15];
      w[i + 1] := ((x << 1) | (x >> 31)) & m32;
    end loop;
    a := h0; b := h1; c := h2; d := h3; e := h4;
    for i in 0 .. 79 loop
      if i < 20 then
        f := (b & c) | ((b # m32) & d); k := 1518500249;
      elsif i < 40 then
        f := (b # c) # d; k := 1859775393;
      elsif i < 60 then
        f := ((b & c) | (b & d)) | (c & d); k := 2400959708;
      else
        f := (b # c) # d; k := 3395469782;
      end if;
      t := ((((a << 5) | (a >> 27)) & m32) + f + e + k + w[i + 1]) & m32;
      e := d; d := c; c := ((b << 30) | (b >> 2)) & m32; b := a; a := t;
    end loop;
    h0 := (h0 + a) & m32; h1 := (h1 + b) & m32; h2 := (h2 + c) & m32; h3 := (h3 + d) & m32; h4 := (h4 + e) & m32;
  end loop;
  return substr(pg_catalog.int8send(h0), 5) || substr(pg_catalog.int8send(h1), 5) || substr(pg_catalog.int8send(h2), 5)
         || substr(pg_catalog.int8send(h3), 5) || substr(pg_catalog.int8send(h4), 5);
end $$;

create function @extschema@.uuid_generate_v3(namespace uuid, name text) returns uuid
language sql immutable strict parallel safe as $$
  select @extschema@._sage_uuid_from_hash(
    decode(pg_catalog.md5(pg_catalog.uuid_send(namespace) || convert_to(name, pg_catalog.getdatabaseencoding())), 'hex'), 3)
$$;

create function @extschema@.uuid_generate_v5(namespace uuid, name text) returns uuid
language sql immutable strict parallel safe as $$
  select @extschema@._sage_uuid_from_hash(
    @extschema@._sage_uuid_sha1(pg_catalog.uuid_send(namespace) || convert_to(name, pg_catalog.getdatabaseencoding())), 5)
$$;

create function @extschema@.uuid_generate_v4() returns uuid
language sql volatile strict parallel safe as $$ select pg_catalog.gen_random_uuid() $$;

-- Version 1: 100-ns intervals since 1582-10-15 (the clock's microseconds x 10), a random clock sequence and a
-- random node with the multicast bit set.
create function @extschema@.uuid_generate_v1mc() returns uuid
language plpgsql volatile strict parallel safe as $$
declare
  ts bigint := (floor(extract(epoch from clock_timestamp()) * 1000000)::bigint * 10) + 122192928000000000;
  rnd bytea := pg_catalog.uuid_send(pg_catalog.gen_random_uuid());
  node bytea := substr(rnd, 11, 6);
begin
  node := set_byte(node, 0, get_byte(node, 0) | 1);
  return encode(substr(pg_catalog.int8send(ts & 4294967295), 5)
                || substr(pg_catalog.int8send((ts >> 32) & 65535), 7)
                || substr(pg_catalog.int8send(((ts >> 48) & 4095) | 4096), 7)
                || set_byte(substr(rnd, 1, 1), 0, (get_byte(rnd, 0) & 63) | 128) || substr(rnd, 2, 1)
                || node, 'hex')::uuid;
end $$;

create function @extschema@.uuid_generate_v1() returns uuid
language sql volatile strict parallel safe as $$ select @extschema@.uuid_generate_v1mc() $$;
