//! Deletion vectors: the rows of a data file that are gone, kept in a small file beside it instead of
//! rewriting it (Delta protocol, "Deletion Vectors"). A merge that changes a few rows of a large file marks
//! them deleted and writes their new versions to a new file, so its cost follows the change, not the file.
//!
//! The files are written by delta-rs's kernel (`StreamingDeletionVectorWriter`). They are read back here:
//! the kernel's reader goes through its blocking storage interface, and the format is short — a version
//! byte, then per vector its size (big-endian), the portable `RoaringTreemap` behind a magic number, and a
//! CRC-32 (big-endian) of the magic and the bitmap.

use delta_kernel::actions::deletion_vector_writer::{KernelDeletionVector, StreamingDeletionVectorWriter};
use deltalake::kernel::{DeletionVectorDescriptor, StorageType};
use deltalake::logstore::ObjectStoreRef;
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::table::state::DeltaTableState;
use deltalake::{DeltaTableError, Path};
use roaring::RoaringTreemap;
use uuid::Uuid;

use super::table_protocol::TableProtocol;

/// The table property that lets writers mark rows deleted (Delta's own name, as Spark and Databricks set it).
pub(crate) const ENABLE_PROPERTY: &str = "delta.enableDeletionVectors";
/// The `RoaringBitmapArray` format's magic number (little-endian in the file).
const PORTABLE_MAGIC: u32 = 1_681_511_377;
/// A relative vector's path ends with its file's UUID in Z85: 20 characters (16 bytes).
const ENCODED_UUID_LENGTH: usize = 20;

/// Whether merges may mark rows deleted in the table: it asks for it and its protocol has the feature.
pub(crate) fn enabled(state: &DeltaTableState) -> bool {
    let asked = state.metadata().configuration().get(ENABLE_PROPERTY).is_some_and(|value| value == "true");
    asked && TableProtocol::of(state).requires_of_readers_and_writers("deletionVectors")
}

/// Whether this crate reads the vector: relative files and inline vectors, not absolute paths (which can name
/// another store).
pub(crate) fn readable(descriptor: &DeletionVectorDescriptor) -> bool {
    descriptor.storage_type != StorageType::AbsolutePath
}

/// The rows a file's deletion vector removes.
pub(crate) async fn read_deleted_rows(
    store: &ObjectStoreRef,
    descriptor: &DeletionVectorDescriptor,
) -> Result<RoaringTreemap, DeltaTableError> {
    let invalid = |what: String| DeltaTableError::Generic(format!("deletion vector {descriptor:?}: {what}"));
    let serialized = match descriptor.storage_type {
        StorageType::Inline => z85::decode(&descriptor.path_or_inline_dv)
            .map_err(|error| invalid(format!("inline data is not Z85: {error}")))?,
        StorageType::UuidRelativePath => {
            let location = relative_location(&descriptor.path_or_inline_dv)
                .ok_or_else(|| invalid("the path does not end with a Z85-encoded UUID".into()))?;
            let start =
                usize::try_from(descriptor.offset.unwrap_or(1)).map_err(|_| invalid("negative offset".into()))?;
            let size = usize::try_from(descriptor.size_in_bytes).map_err(|_| invalid("negative size".into()))?;
            // Size prefix, magic and bitmap, CRC.
            let bytes = store.get_range(&location, (start as u64)..(start + 4 + size + 4) as u64).await?;
            let stored_size = u32::from_be_bytes(bytes[..4].try_into().expect("four bytes")) as usize;
            if stored_size != size {
                return Err(invalid(format!("{location} holds {stored_size} bytes where the log says {size}")));
            }
            let (data, crc) = bytes[4..].split_at(size);
            if crc32fast::hash(data).to_be_bytes() != crc {
                return Err(invalid(format!("{location} fails its CRC-32 check")));
            }
            data.to_vec()
        }
        StorageType::AbsolutePath => return Err(invalid("absolute paths are not read".into())),
    };
    let Some((magic, bitmap)) = serialized.split_first_chunk::<4>() else {
        return Err(invalid("shorter than its magic number".into()));
    };
    if u32::from_le_bytes(*magic) != PORTABLE_MAGIC {
        return Err(invalid(format!("unknown magic number {}", u32::from_le_bytes(*magic))));
    }
    let deleted = RoaringTreemap::deserialize_from(bitmap).map_err(|error| invalid(error.to_string()))?;
    if deleted.len() != descriptor.cardinality as u64 {
        return Err(invalid(format!("holds {} rows where the log says {}", deleted.len(), descriptor.cardinality)));
    }
    Ok(deleted)
}

/// Writes `vectors` into one new file at the table's root and returns their descriptors, in order.
pub(crate) async fn write_deletion_vectors(
    store: &ObjectStoreRef,
    vectors: &[&RoaringTreemap],
) -> Result<Vec<DeletionVectorDescriptor>, DeltaTableError> {
    if vectors.is_empty() {
        return Ok(Vec::new());
    }
    let file = Uuid::new_v4();
    let encoded_path = z85::encode(file.as_bytes());
    let mut bytes = Vec::new();
    let mut writer = StreamingDeletionVectorWriter::new(&mut bytes);
    let mut descriptors = Vec::with_capacity(vectors.len());
    for deleted in vectors {
        let mut vector = KernelDeletionVector::new();
        vector.add_deleted_row_indexes(deleted.iter());
        let written = writer.write_deletion_vector(vector).map_err(kernel_error)?;
        descriptors.push(DeletionVectorDescriptor {
            storage_type: StorageType::UuidRelativePath,
            path_or_inline_dv: encoded_path.clone(),
            offset: Some(written.offset),
            size_in_bytes: written.size_in_bytes,
            cardinality: written.cardinality,
        });
    }
    writer.finalize().map_err(kernel_error)?;
    store.put(&file_location("", &file), bytes.into()).await?;
    Ok(descriptors)
}

fn kernel_error(error: delta_kernel::Error) -> DeltaTableError {
    DeltaTableError::Generic(format!("cannot write a deletion vector: {error}"))
}

/// Where a relative vector's file is: `<prefix>/deletion_vector_<uuid>.bin` under the table's root, the prefix
/// being whatever comes before the encoded UUID (Spark writes one or two characters to spread files out).
fn relative_location(encoded: &str) -> Option<Path> {
    let split = encoded.len().checked_sub(ENCODED_UUID_LENGTH)?;
    let (prefix, uuid) = (encoded.get(..split)?, encoded.get(split..)?);
    let uuid = Uuid::from_slice(&z85::decode(uuid).ok()?).ok()?;
    Some(file_location(prefix, &uuid))
}

fn file_location(prefix: &str, uuid: &Uuid) -> Path {
    let name = format!("deletion_vector_{uuid}.bin");
    if prefix.is_empty() { Path::from(name) } else { Path::from(format!("{prefix}/{name}")) }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::ObjectStore;
    use deltalake::logstore::object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn vectors_written_in_one_file_read_back_each_with_its_rows() {
        let store: ObjectStoreRef = Arc::new(InMemory::new());
        let first: RoaringTreemap = [0, 7, 8, 4_294_967_296 + 3].into_iter().collect();
        let second: RoaringTreemap = (100..10_000).collect();
        let descriptors = write_deletion_vectors(&store, &[&first, &second]).await.expect("write");
        assert_eq!(descriptors.len(), 2);
        assert_eq!(descriptors[0].offset, Some(1), "the first vector follows the version byte");
        assert_eq!((descriptors[0].cardinality, descriptors[1].cardinality), (4, 9_900));
        assert_eq!(read_deleted_rows(&store, &descriptors[0]).await.expect("read first"), first);
        assert_eq!(read_deleted_rows(&store, &descriptors[1]).await.expect("read second"), second);
        let listed: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None)).await.expect("list");
        assert_eq!(listed.len(), 1);
        assert!(listed[0].location.as_ref().starts_with("deletion_vector_"), "{}", listed[0].location);
    }

    #[tokio::test]
    async fn a_damaged_vector_is_refused() {
        let store: ObjectStoreRef = Arc::new(InMemory::new());
        let rows: RoaringTreemap = [1, 2, 3].into_iter().collect();
        let descriptor = write_deletion_vectors(&store, &[&rows]).await.expect("write").remove(0);
        let location = relative_location(&descriptor.path_or_inline_dv).expect("relative path");
        let mut bytes = store.get(&location).await.expect("get").bytes().await.expect("bytes").to_vec();
        let last = bytes.len() - 6;
        bytes[last] ^= 0xff;
        store.put(&location, bytes.into()).await.expect("put");
        let error = read_deleted_rows(&store, &descriptor).await.expect_err("damaged");
        assert!(error.to_string().contains("CRC-32"), "{error}");
    }

    #[tokio::test]
    async fn inline_vectors_and_prefixed_paths_are_read() {
        let store: ObjectStoreRef = Arc::new(InMemory::new());
        let rows: RoaringTreemap = [5, 6].into_iter().collect();
        let mut serialized = PORTABLE_MAGIC.to_le_bytes().to_vec();
        rows.serialize_into(&mut serialized).expect("serialize");
        let inline = DeletionVectorDescriptor {
            storage_type: StorageType::Inline,
            path_or_inline_dv: z85::encode(&serialized),
            offset: None,
            size_in_bytes: serialized.len() as i32,
            cardinality: 2,
        };
        assert_eq!(read_deleted_rows(&store, &inline).await.expect("inline"), rows);

        let uuid = Uuid::new_v4();
        let location = relative_location(&format!("ab{}", z85::encode(uuid.as_bytes()))).expect("prefixed");
        assert_eq!(location.as_ref(), format!("ab/deletion_vector_{uuid}.bin"));
    }
}
