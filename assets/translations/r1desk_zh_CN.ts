<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN">
<context>
    <name>AboutButton</name>
    <message>
        <source>About r1desk: version, llama.cpp build, data folder</source>
        <translation>关于 r1desk：版本、llama.cpp 构建、数据文件夹</translation>
    </message>
</context>
<context>
    <name>AboutDialog</name>
    <message>
        <source>CPU kernels: {variant} ({features}), chosen for this processor from {count} variants</source>
        <translation>处理器内核：{variant}（{features}），从 {count} 个版本中为这颗处理器选出</translation>
    </message>
    <message>
        <source>CPU kernels: {variant}</source>
        <translation>处理器内核：{variant}</translation>
    </message>
    <message>
        <source>CPU kernels built for {features}</source>
        <translation>处理器内核为 {features} 编译</translation>
    </message>
    <message>
        <source>Backends: {backends}</source>
        <translation>后端：{backends}</translation>
    </message>
    <message>
        <source>About r1desk</source>
        <translation>关于 r1desk</translation>
    </message>
    <message>
        <source>Version {version}</source>
        <translation>版本 {version}</translation>
    </message>
    <message>
        <source>Runs DeepSeek-R1 and other GGUF models on this computer. Nothing leaves it.</source>
        <translation>在这台电脑上运行 DeepSeek-R1 和其他 GGUF 模型，任何数据都不会离开它。</translation>
    </message>
    <message>
        <source>llama.cpp</source>
        <translation>llama.cpp</translation>
    </message>
    <message>
        <source>could not be asked: {error}</source>
        <translation>无法查询：{error}</translation>
    </message>
    <message>
        <source>Looking…</source>
        <translation>正在查看…</translation>
    </message>
    <message>
        <source>Data folder</source>
        <translation>数据文件夹</translation>
    </message>
    <message>
        <source>Open</source>
        <translation>打开</translation>
    </message>
    <message>
        <source>Qt</source>
        <translation>Qt</translation>
    </message>
    <message>
        <source>Copy details</source>
        <translation>复制详情</translation>
    </message>
</context>
<context>
    <name>AdaptersDialog</name>
    <message>
        <source>No adapters yet. Import a LoRA adapter as a GGUF file, or a PEFT folder (adapter_config.json and adapter_model.safetensors) trained on the loaded model.</source>
        <translation>还没有适配器。可以导入 GGUF 格式的 LoRA 适配器文件，或在已加载模型上训练得到的 PEFT 文件夹（adapter_config.json 和 adapter_model.safetensors）。</translation>
    </message>
    <message>
        <source>Architecture</source>
        <translation>架构</translation>
    </message>
    <message>
        <source>Trained on</source>
        <translation>训练所用模型</translation>
    </message>
    <message>
        <source>not recorded</source>
        <translation>未记录</translation>
    </message>
    <message>
        <source>Rank, alpha</source>
        <translation>秩、alpha</translation>
    </message>
    <message>
        <source>Changes</source>
        <translation>修改的权重</translation>
    </message>
    <message>
        <source>Size</source>
        <translation>大小</translation>
    </message>
    <message>
        <source>Imported</source>
        <translation>导入时间</translation>
    </message>
    <message>
        <source>Notes</source>
        <translation>备注</translation>
    </message>
    <message>
        <source>Import a LoRA adapter</source>
        <translation>导入 LoRA 适配器</translation>
    </message>
    <message>
        <source>GGUF adapters (*.gguf)</source>
        <translation>GGUF 适配器 (*.gguf)</translation>
    </message>
    <message>
        <source>Import a PEFT adapter folder</source>
        <translation>导入 PEFT 适配器文件夹</translation>
    </message>
    <message>
        <source>Load the model this adapter was trained on first: a PEFT folder is converted against it.</source>
        <translation>请先加载训练这个适配器所用的模型：PEFT 文件夹要依据它来转换。</translation>
    </message>
    <message>
        <source>Importing {name}…</source>
        <translation>正在导入 {name}…</translation>
    </message>
    <message>
        <source>Imported {name} (rank {rank}, {size}).</source>
        <translation>已导入 {name}（秩 {rank}，{size}）。</translation>
    </message>
    <message>
        <source>Export the adapter</source>
        <translation>导出适配器</translation>
    </message>
    <message>
        <source>Wrote {path}.</source>
        <translation>已写入 {path}。</translation>
    </message>
    <message>
        <source>Removed {name}; replies made with it still say so.</source>
        <translation>已删除 {name}；用它生成的回复仍会注明。</translation>
    </message>
    <message>
        <source>This conversation&apos;s next replies use: {list}.</source>
        <translation>这个对话接下来的回复使用：{list}。</translation>
    </message>
    <message>
        <source>This conversation&apos;s next replies use the model alone.</source>
        <translation>这个对话接下来的回复只用模型本身。</translation>
    </message>
    <message>
        <source>Open or start a conversation to choose the adapters its replies use.</source>
        <translation>打开或开始一个对话，再为它的回复选择适配器。</translation>
    </message>
    <message>
        <source>Import an adapter to use it here.</source>
        <translation>导入适配器后即可在这里使用。</translation>
    </message>
    <message>
        <source>Tick the adapters this conversation&apos;s replies use, each with its strength: 1 as trained, 0 off, up to 2. The model is not reloaded.</source>
        <translation>勾选这个对话的回复要用的适配器，并设置强度：1 为训练时的效果，0 为关闭，最大 2。无需重新加载模型。</translation>
    </message>
    <message>
        <source>Adapters</source>
        <translation>适配器</translation>
    </message>
    <message>
        <source>Import a GGUF file…</source>
        <translation>导入 GGUF 文件…</translation>
    </message>
    <message>
        <source>Import a PEFT folder…</source>
        <translation>导入 PEFT 文件夹…</translation>
    </message>
    <message>
        <source>Export…</source>
        <translation>导出…</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>删除</translation>
    </message>
    <message>
        <source>This conversation</source>
        <translation>这个对话</translation>
    </message>
    <message>
        <source>Use these</source>
        <translation>使用所选</translation>
    </message>
</context>
<context>
    <name>ChatView</name>
    <message>
        <source>What can I help you with?</source>
        <translation>有什么可以帮你？</translation>
    </message>
    <message>
        <source>Everything runs on this computer: your conversations never leave it.
Enter sends, Shift+Enter starts a new line.</source>
        <translation>一切都在这台电脑上运行：你的对话不会离开它。
按 Enter 发送，Shift+Enter 换行。</translation>
    </message>
</context>
<context>
    <name>CodeBlock</name>
    <message>
        <source>Copied</source>
        <translation>已复制</translation>
    </message>
    <message>
        <source>code</source>
        <translation>代码</translation>
    </message>
    <message>
        <source>Copy</source>
        <translation>复制</translation>
    </message>
    <message>
        <source>Copy this code</source>
        <translation>复制这段代码</translation>
    </message>
</context>
<context>
    <name>Composer</name>
    <message>
        <source>Stop (Esc)</source>
        <translation>停止 (Esc)</translation>
    </message>
    <message>
        <source>Send (Enter)</source>
        <translation>发送 (Enter)</translation>
    </message>
    <message>
        <source>Message the model… (Enter sends, Shift+Enter adds a line)</source>
        <translation>给模型发消息…（Enter 发送，Shift+Enter 换行）</translation>
    </message>
    <message>
        <source>Choose a model</source>
        <translation>选择模型</translation>
    </message>
</context>
<context>
    <name>Documents</name>
    <message>
        <source>{n} s</source>
        <translation>{n} 秒</translation>
    </message>
    <message>
        <source>{n} min</source>
        <translation>{n} 分钟</translation>
    </message>
    <message>
        <source>{h} h {m} min</source>
        <translation>{h} 小时 {m} 分钟</translation>
    </message>
    <message>
        <source>Documents: folders and files conversations can answer from</source>
        <translation>文档：对话可以依据其中内容回答的文件夹和文件</translation>
    </message>
</context>
<context>
    <name>DocumentsButton</name>
    <message>
        <source>Answers come from your documents: {names}</source>
        <translation>回答依据你的文档：{names}</translation>
    </message>
    <message>
        <source>Answer from your documents: choose collections</source>
        <translation>依据你的文档回答：选择文档集</translation>
    </message>
    <message>
        <source>Answer from:</source>
        <translation>依据以下文档集回答：</translation>
    </message>
    <message>
        <source>No collections yet</source>
        <translation>还没有文档集</translation>
    </message>
    <message>
        <source>Manage documents…</source>
        <translation>管理文档…</translation>
    </message>
</context>
<context>
    <name>DocumentsDialog</name>
    <message>
        <source>&lt;h3&gt;No collections yet&lt;/h3&gt;Make a collection, then add folders or files to it: r1desk indexes them, and a conversation that uses the collection answers from them, citing the pages it used.</source>
        <translation>&lt;h3&gt;还没有文档集&lt;/h3&gt;新建一个文档集，再向其中添加文件夹或文件：r1desk 会为它们建立索引，使用该文档集的对话将依据这些文档回答，并注明引用的页码。</translation>
    </message>
    <message>
        <source>Problems</source>
        <translation>问题</translation>
    </message>
    <message>
        <source>updated {when}</source>
        <translation>更新于 {when}</translation>
    </message>
    <message>
        <source>not indexed yet</source>
        <translation>尚未建立索引</translation>
    </message>
    <message>
        <source>{files} files indexed · {chunks} passages · {size} · {when}</source>
        <translation>已索引 {files} 个文件 · {chunks} 个段落 · {size} · {when}</translation>
    </message>
    <message>
        <source>Searched by words and by meaning, with {model}.</source>
        <translation>按词语和语义检索，语义模型为 {model}。</translation>
    </message>
    <message>
        <source>{n} files still wait for their vectors: index again.</source>
        <translation>还有 {n} 个文件没有向量：请再次建立索引。</translation>
    </message>
    <message>
        <source>Full-text search only so far. The next indexing adds vectors with {model}, so that questions find passages in other words too.</source>
        <translation>目前只能全文检索。下次建立索引时会用 {model} 加入向量，这样换一种说法提问也能找到相关段落。</translation>
    </message>
    <message>
        <source>Full-text search only: questions find passages that share their words. Download the embedding model r1desk offers for Chinese and English, or choose a GGUF embedding model file, to search by meaning as well.</source>
        <translation>只能全文检索：只有包含相同词语的段落才会被找到。下载 r1desk 提供的中英文嵌入模型，或选择一个 GGUF 嵌入模型文件，即可同时按语义检索。</translation>
    </message>
    <message>
        <source>Ticked: changes in it are indexed as they happen, while r1desk runs.</source>
        <translation>勾选后：r1desk 运行期间，其中的改动会随时建立索引。</translation>
    </message>
    <message>
        <source>{path} (not there: moved, or on a drive not connected)</source>
        <translation>{path}（不存在：可能已移动，或所在的磁盘未连接）</translation>
    </message>
    <message>
        <source>Problems ({n})</source>
        <translation>问题（{n}）</translation>
    </message>
    <message>
        <source>Every file found could be read.</source>
        <translation>找到的文件都能读取。</translation>
    </message>
    <message>
        <source>New collection</source>
        <translation>新建文档集</translation>
    </message>
    <message>
        <source>Name of the collection (for example: Work papers):</source>
        <translation>文档集名称（例如：工作文件）：</translation>
    </message>
    <message>
        <source>Made {name}: add folders or files to it.</source>
        <translation>已新建 {name}：请向其中添加文件夹或文件。</translation>
    </message>
    <message>
        <source>Delete the collection</source>
        <translation>删除文档集</translation>
    </message>
    <message>
        <source>Delete {name}? Its index ({files} files, {chunks} passages) is removed; your files stay as they are. Conversations that used it no longer answer from it.</source>
        <translation>删除 {name}？它的索引（{files} 个文件，{chunks} 个段落）将被删除；你的文件保持原样。使用它的对话将不再依据它回答。</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>删除</translation>
    </message>
    <message>
        <source>Deleted {name} ({files} files, {chunks} passages); your files are untouched.</source>
        <translation>已删除 {name}（{files} 个文件，{chunks} 个段落）；你的文件没有改动。</translation>
    </message>
    <message>
        <source>Add a folder</source>
        <translation>添加文件夹</translation>
    </message>
    <message>
        <source>Add files</source>
        <translation>添加文件</translation>
    </message>
    <message>
        <source>Documents (*.pdf *.docx *.md *.markdown *.txt *.html *.htm *.csv *.rst *.log);;All files (*)</source>
        <translation>文档 (*.pdf *.docx *.md *.markdown *.txt *.html *.htm *.csv *.rst *.log);;所有文件 (*)</translation>
    </message>
    <message>
        <source>Took {path} out of {name}, with its {n} files; they stay on the disk.</source>
        <translation>已将 {path} 及其中 {n} 个文件移出 {name}；文件仍保留在磁盘上。</translation>
    </message>
    <message>
        <source>Choose an embedding model</source>
        <translation>选择嵌入模型</translation>
    </message>
    <message>
        <source>GGUF models (*.gguf)</source>
        <translation>GGUF 模型 (*.gguf)</translation>
    </message>
    <message>
        <source>Downloading {model}…</source>
        <translation>正在下载 {model}…</translation>
    </message>
    <message>
        <source>Downloading {model}… {done} of {total}</source>
        <translation>正在下载 {model}… {done} / {total}</translation>
    </message>
    <message>
        <source>The embedding model could not be downloaded: {error}</source>
        <translation>嵌入模型下载失败：{error}</translation>
    </message>
    <message>
        <source>Collections are indexed with {model} from the next indexing on.</source>
        <translation>从下次建立索引起，文档集将使用 {model}。</translation>
    </message>
    <message>
        <source>Looking for files…</source>
        <translation>正在查找文件…</translation>
    </message>
    <message>
        <source>Stopping after the file being read…</source>
        <translation>读完当前文件后停止…</translation>
    </message>
    <message>
        <source>Loading the embedding model {model}…</source>
        <translation>正在加载嵌入模型 {model}…</translation>
    </message>
    <message>
        <source>Looking for files… {n} found</source>
        <translation>正在查找文件… 已找到 {n} 个</translation>
    </message>
    <message>
        <source>{done} of {total} files</source>
        <translation>{done} / {total} 个文件</translation>
    </message>
    <message>
        <source>{rate} passages/s</source>
        <translation>每秒 {rate} 个段落</translation>
    </message>
    <message>
        <source>about {time} left</source>
        <translation>约剩 {time}</translation>
    </message>
    <message>
        <source>Indexed in {time}: {added} new and {updated} changed files ({chunks} passages), {unchanged} unchanged, {removed} gone.</source>
        <translation>索引用时 {time}：新增 {added} 个、更新 {updated} 个文件（{chunks} 个段落），{unchanged} 个未变，{removed} 个已移除。</translation>
    </message>
    <message>
        <source>{n} files could not be read: see Problems.</source>
        <translation>{n} 个文件无法读取：见“问题”。</translation>
    </message>
    <message>
        <source>{path} is not there (moved, or on a drive not connected): its files are kept.</source>
        <translation>{path} 不存在（可能已移动，或所在的磁盘未连接）：其中文件的索引仍保留。</translation>
    </message>
    <message>
        <source>The embedding model changed to {model}: every passage was embedded again.</source>
        <translation>嵌入模型已换成 {model}：所有段落都已重新生成向量。</translation>
    </message>
    <message>
        <source>Indexing stopped. The {n} files done so far are kept; indexing again goes on from there.</source>
        <translation>索引已停止。已完成的 {n} 个文件会保留；再次建立索引时从这里继续。</translation>
    </message>
    <message>
        <source>{name}: a change in a watched folder was indexed ({added} new, {updated} changed, {removed} gone).</source>
        <translation>{name}：受监视文件夹中的改动已建立索引（新增 {added} 个，更新 {updated} 个，移除 {removed} 个）。</translation>
    </message>
    <message>
        <source>Documents</source>
        <translation>文档</translation>
    </message>
    <message>
        <source>Collections</source>
        <translation>文档集</translation>
    </message>
    <message>
        <source>New…</source>
        <translation>新建…</translation>
    </message>
    <message>
        <source>Delete…</source>
        <translation>删除…</translation>
    </message>
    <message>
        <source>Choose an embedding model…</source>
        <translation>选择嵌入模型…</translation>
    </message>
    <message>
        <source>Download {model} ({size})</source>
        <translation>下载 {model}（{size}）</translation>
    </message>
    <message>
        <source>An embedding model for Chinese and English: questions find passages that say the same in other words</source>
        <translation>适合中英文的嵌入模型：换一种说法提问，也能找到意思相同的段落</translation>
    </message>
    <message>
        <source>Folders and files</source>
        <translation>文件夹和文件</translation>
    </message>
    <message>
        <source>Add a folder…</source>
        <translation>添加文件夹…</translation>
    </message>
    <message>
        <source>Add files…</source>
        <translation>添加文件…</translation>
    </message>
    <message>
        <source>Remove</source>
        <translation>移除</translation>
    </message>
    <message>
        <source>Tick a folder to watch it: while r1desk runs, files added, changed or deleted there are indexed without asking.</source>
        <translation>勾选文件夹即可监视它：r1desk 运行期间，其中新增、修改或删除的文件会自动建立索引。</translation>
    </message>
    <message>
        <source>File</source>
        <translation>文件</translation>
    </message>
    <message>
        <source>Why it was not indexed</source>
        <translation>未能建立索引的原因</translation>
    </message>
    <message>
        <source>Index now</source>
        <translation>立即建立索引</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
</context>
<context>
    <name>DownloadRow</name>
    <message>
        <source>Starting…</source>
        <translation>正在开始…</translation>
    </message>
    <message>
        <source>{done} of {total}</source>
        <translation>{done} / {total}</translation>
    </message>
    <message>
        <source>{speed}/s</source>
        <translation>{speed}/秒</translation>
    </message>
    <message>
        <source>{time} left</source>
        <translation>剩余 {time}</translation>
    </message>
    <message>
        <source>Contacting the download server…</source>
        <translation>正在连接下载服务器…</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
</context>
<context>
    <name>Errors</name>
    <message>
        <source>Something went wrong inside r1desk ({kind}: {error}). Details are in the log.</source>
        <translation>r1desk 内部出错（{kind}：{error}）。详情见日志。</translation>
    </message>
    <message>
        <source>The model file is damaged or incomplete.</source>
        <translation>模型文件已损坏或不完整。</translation>
    </message>
    <message>
        <source>This file is not a GGUF model.</source>
        <translation>这个文件不是 GGUF 模型。</translation>
    </message>
    <message>
        <source>The model file was not found.</source>
        <translation>找不到模型文件。</translation>
    </message>
    <message>
        <source>The model could not be loaded.</source>
        <translation>无法加载模型。</translation>
    </message>
    <message>
        <source>The model stopped unexpectedly; it starts again with the next message.</source>
        <translation>模型意外停止；发送下一条消息时会自动重新启动。</translation>
    </message>
    <message>
        <source>The model&apos;s chat template could not be used.</source>
        <translation>无法使用该模型的对话模板。</translation>
    </message>
    <message>
        <source>There is not enough memory for this model with these settings.</source>
        <translation>按当前设置，内存不足以运行此模型。</translation>
    </message>
    <message>
        <source>The message is too long for the model&apos;s context.</source>
        <translation>消息太长，超出了模型的上下文长度。</translation>
    </message>
    <message>
        <source>The chat history database cannot be used.</source>
        <translation>无法使用聊天记录数据库。</translation>
    </message>
    <message>
        <source>That item no longer exists.</source>
        <translation>该项目已不存在。</translation>
    </message>
    <message>
        <source>The model hub cannot be reached; check the network or use a mirror.</source>
        <translation>无法连接模型仓库；请检查网络或使用镜像站。</translation>
    </message>
    <message>
        <source>There is not enough free disk space.</source>
        <translation>磁盘剩余空间不足。</translation>
    </message>
    <message>
        <source>The download failed and was not used.</source>
        <translation>下载失败，文件未被使用。</translation>
    </message>
    <message>
        <source>The model could not be converted.</source>
        <translation>无法转换该模型。</translation>
    </message>
    <message>
        <source>its name could not be looked up</source>
        <translation>无法解析它的域名</translation>
    </message>
    <message>
        <source>it refused the connection</source>
        <translation>它拒绝了连接</translation>
    </message>
    <message>
        <source>it did not answer in time</source>
        <translation>它没有及时响应</translation>
    </message>
    <message>
        <source>the secure connection failed</source>
        <translation>安全连接失败</translation>
    </message>
    <message>
        <source>the connection was cut</source>
        <translation>连接被中断</translation>
    </message>
    <message>
        <source>the network cannot reach it</source>
        <translation>网络无法到达它</translation>
    </message>
    <message>
        <source>the proxy refused the connection</source>
        <translation>代理服务器拒绝了连接</translation>
    </message>
    <message>
        <source>it is not working right now</source>
        <translation>它现在无法正常工作</translation>
    </message>
    <message>
        <source>the connection failed</source>
        <translation>连接失败</translation>
    </message>
    <message>
        <source>The download server {server} cannot be reached: {why}.</source>
        <translation>无法连接下载服务器 {server}：{why}。</translation>
    </message>
    <message>
        <source>It is the server set in Settings › Downloads: check its address there, or clear it to use huggingface.co.</source>
        <translation>这是在“设置 › 下载”中设置的服务器：请在那里检查它的地址，或清空它以使用 huggingface.co。</translation>
    </message>
    <message>
        <source>Check the network connection, or set a mirror such as https://hf-mirror.com in Settings › Downloads.</source>
        <translation>请检查网络连接，或在“设置 › 下载”中设置镜像，例如 https://hf-mirror.com。</translation>
    </message>
    <message>
        <source>the system ran out of memory and ended it</source>
        <translation>系统内存不足，结束了它</translation>
    </message>
    <message>
        <source>another program or the user ended it</source>
        <translation>它被其他程序或用户结束</translation>
    </message>
    <message>
        <source>llama.cpp stopped on an internal error</source>
        <translation>llama.cpp 因内部错误而停止</translation>
    </message>
    <message>
        <source>llama.cpp crashed</source>
        <translation>llama.cpp 崩溃了</translation>
    </message>
    <message>
        <source>it stopped answering</source>
        <translation>它停止了响应</translation>
    </message>
    <message>
        <source>it ended ({how})</source>
        <translation>它已结束（{how}）</translation>
    </message>
    <message>
        <source>The model stopped unexpectedly: {why}. It starts again with the next message.</source>
        <translation>模型意外停止：{why}。发送下一条消息时会重新启动。</translation>
    </message>
    <message>
        <source>it is a text file</source>
        <translation>它是一个文本文件</translation>
    </message>
    <message>
        <source>it is a web page, perhaps an error page saved instead of the download</source>
        <translation>它是一个网页，可能是下载时保存下来的错误页面</translation>
    </message>
    <message>
        <source>it is a safetensors file: convert the model to GGUF first</source>
        <translation>它是 safetensors 文件：请先把模型转换为 GGUF</translation>
    </message>
    <message>
        <source>it is a ZIP archive, as PyTorch checkpoints are: convert the model to GGUF first</source>
        <translation>它是 ZIP 压缩包（PyTorch 检查点就是这种格式）：请先把模型转换为 GGUF</translation>
    </message>
    <message>
        <source>it is a Python pickle, which r1desk never loads</source>
        <translation>它是 Python pickle 文件，r1desk 从不加载这种文件</translation>
    </message>
    <message>
        <source>it is a folder</source>
        <translation>它是一个文件夹</translation>
    </message>
    <message>
        <source>it is too short to be one</source>
        <translation>它太短，不可能是模型文件</translation>
    </message>
    <message>
        <source>it is a LoRA adapter: load it on top of a model</source>
        <translation>它是 LoRA 适配器：请在模型之上加载它</translation>
    </message>
    <message>
        <source>it does not start with the GGUF signature</source>
        <translation>它的开头不是 GGUF 标识</translation>
    </message>
    <message>
        <source>{file} is not a GGUF model: {what}.</source>
        <translation>{file} 不是 GGUF 模型：{what}。</translation>
    </message>
    <message>
        <source>The model file {file} was not found; it may have been moved or deleted.</source>
        <translation>找不到模型文件 {file}，它可能已被移动或删除。</translation>
    </message>
    <message>
        <source>{file} is incomplete: it has {size} of {expected} ({pct}%).</source>
        <translation>{file} 不完整：只有 {expected} 中的 {size}（{pct}%）。</translation>
    </message>
    <message>
        <source>There is not enough memory for this model with these settings: it needs {need}, and {have} can be used. Try a smaller model or quantisation, or a shorter context in Settings.</source>
        <translation>按当前设置，内存不足以运行这个模型：需要 {need}，可用 {have}。请换一个更小的模型或量化版本，或在“设置”中缩短上下文。</translation>
    </message>
    <message>
        <source>The message is {tokens} tokens, but the model&apos;s context holds {n_ctx}.</source>
        <translation>这条消息有 {tokens} 个词元，但模型的上下文只能容纳 {n_ctx} 个。</translation>
    </message>
    <message>
        <source>Shorten it, or raise the context length in Settings (this model was trained for {trained} tokens).</source>
        <translation>请缩短它，或在“设置”中调大上下文长度（这个模型训练时支持 {trained} 个词元）。</translation>
    </message>
    <message>
        <source>Shorten it: this is the longest context the model was trained for.</source>
        <translation>请缩短它：这已经是模型训练时支持的最长上下文。</translation>
    </message>
    <message>
        <source>There is not enough free disk space in {folder}: the download needs {need}, and {free} is free. Free some space, or choose another download folder in Settings › Downloads.</source>
        <translation>{folder} 的磁盘空间不足：下载需要 {need}，可用 {free}。请释放一些空间，或在“设置 › 下载”中选择其他下载文件夹。</translation>
    </message>
    <message>
        <source>There is no folder {path}.</source>
        <translation>文件夹 {path} 不存在。</translation>
    </message>
    <message>
        <source>{path} is a folder: give a file name.</source>
        <translation>{path} 是一个文件夹：请给出文件名。</translation>
    </message>
    <message>
        <source>The disk is full: {path} was not written.</source>
        <translation>磁盘已满：未能写入 {path}。</translation>
    </message>
    <message>
        <source>{repo} is gated, and the access token in Settings › Downloads does not give access to it: accept the model&apos;s terms on its page on the hub, signed in as the account the token belongs to.</source>
        <translation>{repo} 是受限模型，而“设置 › 下载”中的访问令牌无权访问它：请用该令牌所属的账号登录模型仓库，在这个模型的页面上接受它的使用条款。</translation>
    </message>
    <message>
        <source>{repo} is gated: accept the model&apos;s terms on its page on the hub, then enter your access token in Settings › Downloads.</source>
        <translation>{repo} 是受限模型：请先在模型仓库中这个模型的页面上接受它的使用条款，然后在“设置 › 下载”中填写你的访问令牌。</translation>
    </message>
    <message>
        <source>There is no model {repo} on {server}, or the access token in Settings › Downloads cannot read it: check the name.</source>
        <translation>{server} 上没有模型 {repo}，或者“设置 › 下载”中的访问令牌无权读取它：请检查名称。</translation>
    </message>
    <message>
        <source>There is no model {repo} on {server}, or it is private: check the name, or enter an access token that can read it in Settings › Downloads.</source>
        <translation>{server} 上没有模型 {repo}，或者它是私有的：请检查名称，或在“设置 › 下载”中填写有权读取它的访问令牌。</translation>
    </message>
    <message>
        <source>{repo} on {server} has no such branch, tag or commit.</source>
        <translation>{server} 上的 {repo} 没有这个分支、标签或提交。</translation>
    </message>
    <message>
        <source>{repo} on {server} has no file {file}; it may have been renamed or removed. Look the model up again and choose a file it has.</source>
        <translation>{server} 上的 {repo} 没有文件 {file}，它可能已被改名或删除。请重新查找这个模型，并选择它现有的文件。</translation>
    </message>
    <message>
        <source>The access token in Settings › Downloads does not give access to it.</source>
        <translation>“设置 › 下载”中的访问令牌无权访问它。</translation>
    </message>
    <message>
        <source>It may need an access token: enter one in Settings › Downloads.</source>
        <translation>它可能需要访问令牌：请在“设置 › 下载”中填写。</translation>
    </message>
    <message>
        <source>{server} refused {what} (HTTP {status}).</source>
        <translation>{server} 拒绝了 {what} 的请求（HTTP {status}）。</translation>
    </message>
    <message>
        <source>{server} is limiting how often it is asked (HTTP 429).</source>
        <translation>{server} 正在限制请求频率（HTTP 429）。</translation>
    </message>
    <message>
        <source>Try again in a second.</source>
        <translation>请过一秒再试。</translation>
    </message>
    <message>
        <source>Try again in {n} seconds.</source>
        <translation>请过 {n} 秒再试。</translation>
    </message>
    <message>
        <source>Try again in a few minutes.</source>
        <translation>请过几分钟再试。</translation>
    </message>
    <message>
        <source>The download server {server} is not working right now (HTTP {status}).</source>
        <translation>下载服务器 {server} 目前无法正常工作（HTTP {status}）。</translation>
    </message>
    <message>
        <source>Try again later, or clear the server in Settings › Downloads to use huggingface.co.</source>
        <translation>请稍后再试，或在“设置 › 下载”中清空服务器以使用 huggingface.co。</translation>
    </message>
    <message>
        <source>Try again later, or set a mirror such as https://hf-mirror.com in Settings › Downloads.</source>
        <translation>请稍后再试，或在“设置 › 下载”中设置镜像，例如 https://hf-mirror.com。</translation>
    </message>
    <message>
        <source>{server} does not answer like a Hugging Face hub: check the download server&apos;s address in Settings › Downloads.</source>
        <translation>{server} 的应答不像 Hugging Face 模型仓库：请在“设置 › 下载”中检查下载服务器的地址。</translation>
    </message>
    <message>
        <source>The model&apos;s chat template tried something unsafe and was stopped. The model file may have been tampered with: use one from a source you trust.</source>
        <translation>该模型的对话模板试图执行不安全的操作，已被阻止。这个模型文件可能被篡改过：请使用来源可信的模型文件。</translation>
    </message>
    <message>
        <source>The model&apos;s chat template refused this conversation. Some models accept no system prompt, or only turns that alternate between you and the model: remove the system prompt (the conversation&apos;s menu in the sidebar, or Settings › Chat for new conversations), or start a new conversation.</source>
        <translation>该模型的对话模板拒绝了这个对话。有些模型不接受系统提示词，或者只接受你和模型轮流发言的对话：请去掉系统提示词（在侧边栏中该对话的菜单里；新对话的默认值在“设置 › 对话”中），或者开始一个新对话。</translation>
    </message>
    <message>
        <source>The model&apos;s chat template failed while writing the prompt: the template in this model file is faulty. Try another file of this model.</source>
        <translation>该模型的对话模板在生成提示词时出错：这个模型文件中的模板有缺陷。请换用这个模型的其他文件。</translation>
    </message>
    <message>
        <source>The model&apos;s chat template took more than {seconds} seconds to write the prompt and was stopped: the template in this model file is faulty. Try another file of this model.</source>
        <translation>模型的对话模板写提示词用了超过 {seconds} 秒，已被停止：这个模型文件里的模板有问题。请换用这个模型的另一个文件。</translation>
    </message>
    <message>
        <source>The model&apos;s chat template made a prompt of more than {limit} characters and was stopped: the template in this model file is faulty.</source>
        <translation>该模型的对话模板生成的提示词超过了 {limit} 个字符，已被停止：这个模型文件中的模板有缺陷。</translation>
    </message>
    <message>
        <source>The chat history database {file} is in use by another program: close it (or the other r1desk) and try again.</source>
        <translation>聊天记录数据库 {file} 正被其他程序使用：请关闭那个程序（或另一个 r1desk）后再试。</translation>
    </message>
    <message>
        <source>The disk that holds {file} is full, so the last change was not saved. Free some space and try again.</source>
        <translation>{file} 所在的磁盘已满，最后一次更改没有保存。请释放一些空间后再试。</translation>
    </message>
    <message>
        <source>The folder of the chat history database {file} is read-only, so the database cannot be used. Check the folder&apos;s permissions.</source>
        <translation>聊天记录数据库 {file} 所在的文件夹是只读的，因此无法使用该数据库。请检查文件夹的权限。</translation>
    </message>
    <message>
        <source>The chat history database {file} is read-only: conversations can be read, but changes are not saved. Check the permissions of the file and its folder.</source>
        <translation>聊天记录数据库 {file} 是只读的：可以查看对话，但更改不会保存。请检查该文件及其所在文件夹的权限。</translation>
    </message>
    <message>
        <source>The chat history database {file} is damaged. Restore it from a backup, or move it away to start with an empty history.</source>
        <translation>聊天记录数据库 {file} 已损坏。请从备份中恢复它，或者把它移走，以空白的聊天记录重新开始。</translation>
    </message>
    <message>
        <source>The chat history database {file} cannot be read or written: check the disk.</source>
        <translation>无法读写聊天记录数据库 {file}：请检查磁盘。</translation>
    </message>
    <message>
        <source>The chat history database {file} cannot be opened: check that its folder exists and can be written.</source>
        <translation>无法打开聊天记录数据库 {file}：请检查它所在的文件夹是否存在并且可写。</translation>
    </message>
    <message>
        <source>The chat history database {file} was written by a newer version of r1desk: update r1desk to open it.</source>
        <translation>聊天记录数据库 {file} 是由更新版本的 r1desk 写入的：请更新 r1desk 后再打开。</translation>
    </message>
    <message>
        <source>Not a kind of file r1desk reads.</source>
        <translation>不是 r1desk 能读取的文件类型。</translation>
    </message>
    <message>
        <source>Named as text, but it holds binary data (a program, an image or an archive).</source>
        <translation>名为文本文件，内容却是二进制数据（程序、图片或压缩包）。</translation>
    </message>
    <message>
        <source>Its text is in no encoding r1desk recognises.</source>
        <translation>它的文字编码 r1desk 无法识别。</translation>
    </message>
    <message>
        <source>It is locked with a password.</source>
        <translation>它设有密码保护。</translation>
    </message>
    <message>
        <source>It is damaged or cut short, or not what its name says.</source>
        <translation>它已损坏或不完整，或者与文件名所示的类型不符。</translation>
    </message>
    <message>
        <source>It is too big, or would unpack to far more than its size (a zip or PDF bomb).</source>
        <translation>它太大，或解压后会远超自身大小（压缩炸弹或 PDF 炸弹）。</translation>
    </message>
    <message>
        <source>It holds no text to index: it is empty, or a scan without a text layer.</source>
        <translation>其中没有可索引的文字：文件为空，或是没有文字层的扫描件。</translation>
    </message>
    <message>
        <source>Reading it took too long, so it was stopped. It is tried again at the next indexing.</source>
        <translation>读取耗时过长，已被停止。下次建立索引时会再试。</translation>
    </message>
    <message>
        <source>Reading it needed too much memory, so it was stopped. It is tried again at the next indexing.</source>
        <translation>读取需要的内存过多，已被停止。下次建立索引时会再试。</translation>
    </message>
    <message>
        <source>The reader crashed on it; the other files were read. It is tried again at the next indexing.</source>
        <translation>读取它时读取程序崩溃了；其他文件已正常读取。下次建立索引时会再试。</translation>
    </message>
    <message>
        <source>The system does not let r1desk read it (permissions, or a disk error).</source>
        <translation>系统不允许 r1desk 读取它（权限不足，或磁盘出错）。</translation>
    </message>
    <message>
        <source>It is a link that leads back to itself.</source>
        <translation>它是一个指回自身的链接。</translation>
    </message>
    <message>
        <source>It was deleted or moved while it was indexed, or it is a link to nowhere.</source>
        <translation>它在建立索引时被删除或移动了，或者是一个指向不存在位置的链接。</translation>
    </message>
    <message>
        <source>A collection needs a name of at most 100 characters, without control characters.</source>
        <translation>文档集需要一个不超过 100 个字符、不含控制字符的名称。</translation>
    </message>
    <message>
        <source>There is no collection named {name}; it may have been deleted.</source>
        <translation>没有名为 {name} 的文档集；它可能已被删除。</translation>
    </message>
    <message>
        <source>{path} does not exist (any more).</source>
        <translation>{path} 不存在（或已不存在）。</translation>
    </message>
    <message>
        <source>The collection has no folders or files yet: add some to index.</source>
        <translation>这个文档集还没有文件夹或文件：请先添加，再建立索引。</translation>
    </message>
    <message>
        <source>{model} is not an embedding model: choose a GGUF embedding model, or index for full-text search only.</source>
        <translation>{model} 不是嵌入模型：请选择一个 GGUF 嵌入模型，或只建立全文索引。</translation>
    </message>
    <message>
        <source>Download it again from the model picker.</source>
        <translation>请在模型选择器中重新下载。</translation>
    </message>
</context>
<context>
    <name>FirstRunDialog</name>
    <message>
        <source>no catalog model fits this computer</source>
        <translation>目录中没有适合这台电脑的模型</translation>
    </message>
    <message>
        <source>No recommendation is available ({reason}).</source>
        <translation>暂无推荐（{reason}）。</translation>
    </message>
    <message>
        <source>Use this model</source>
        <translation>使用此模型</translation>
    </message>
    <message>
        <source>Looking at this computer…</source>
        <translation>正在查看这台电脑…</translation>
    </message>
    <message>
        <source>Welcome to r1desk</source>
        <translation>欢迎使用 r1desk</translation>
    </message>
    <message>
        <source>r1desk runs AI models on this computer: what you type never leaves it. To start, it needs one model. Here is the one that suits this computer best.</source>
        <translation>r1desk 在这台电脑上运行 AI 模型：你输入的内容不会离开这台电脑。开始之前需要一个模型，下面是最适合这台电脑的模型。</translation>
    </message>
    <message>
        <source>This computer</source>
        <translation>这台电脑</translation>
    </message>
    <message>
        <source>Recommended for you</source>
        <translation>为你推荐</translation>
    </message>
    <message>
        <source>Checking that the download server can be reached…</source>
        <translation>正在检查能否连接下载服务器…</translation>
    </message>
    <message>
        <source>The download is checked against the server&apos;s fingerprint before it is used. It can be stopped and continued later.</source>
        <translation>下载的文件会先与服务器提供的指纹核对，然后才会使用。下载可以暂停，之后继续。</translation>
    </message>
    <message>
        <source>The download server cannot be reached from this computer ({error}). If huggingface.co is blocked where you are, set a mirror such as hf-mirror.com in Settings. Or use a model that is already on this computer:</source>
        <translation>这台电脑无法连接下载服务器（{error}）。如果你所在的地方无法访问 huggingface.co，请在“设置”中改用镜像，例如 hf-mirror.com。也可以使用这台电脑上已有的模型：</translation>
    </message>
    <message>
        <source>Models found on this computer</source>
        <translation>在这台电脑上找到的模型</translation>
    </message>
    <message>
        <source>No GGUF models were found on this computer. Choose a file if you have one.</source>
        <translation>这台电脑上没有找到 GGUF 模型。如果你有模型文件，请选择它。</translation>
    </message>
    <message>
        <source>Choose a GGUF file…</source>
        <translation>选择 GGUF 文件…</translation>
    </message>
    <message>
        <source>Open Settings</source>
        <translation>打开设置</translation>
    </message>
    <message>
        <source>Later</source>
        <translation>以后再说</translation>
    </message>
</context>
<context>
    <name>Fit</name>
    <message>
        <source>Fits on GPU</source>
        <translation>可完全放入显卡</translation>
    </message>
    <message>
        <source>Partly on GPU</source>
        <translation>部分放入显卡</translation>
    </message>
    <message>
        <source>CPU only</source>
        <translation>仅用 CPU</translation>
    </message>
    <message>
        <source>Too large</source>
        <translation>太大</translation>
    </message>
    <message>
        <source>Unknown fit</source>
        <translation>无法判断</translation>
    </message>
    <message>
        <source>{s} s</source>
        <translation>{s} 秒</translation>
    </message>
    <message>
        <source>{m} min {s} s</source>
        <translation>{m} 分 {s} 秒</translation>
    </message>
    <message>
        <source>{h} h {m} min</source>
        <translation>{h} 小时 {m} 分</translation>
    </message>
    <message>
        <source>All {n} layers on the GPU: {gpu} of video memory, {ram} of RAM.</source>
        <translation>全部 {n} 层都在显卡上：占用显存 {gpu}，内存 {ram}。</translation>
    </message>
    <message>
        <source>{k} of {n} layers on the GPU ({gpu}), the rest in RAM ({ram}).</source>
        <translation>{n} 层中的 {k} 层在显卡上（{gpu}），其余在内存中（{ram}）。</translation>
    </message>
    <message>
        <source>On the processor, in RAM: {ram}.</source>
        <translation>在处理器上运行，占用内存 {ram}。</translation>
    </message>
    <message>
        <source>Does not fit: it needs {need}, and {have} can be used.</source>
        <translation>放不下：需要 {need}，可用的只有 {have}。</translation>
    </message>
    <message>
        <source>Does not fit right now: it needs {need}, and {have} can be used right now.</source>
        <translation>此刻放不下：需要 {need}，此刻可用的只有 {have}。</translation>
    </message>
    <message>
        <source>{reason} Context capped at {ctx} tokens, the most this model was trained for.</source>
        <translation>{reason}上下文限制为 {ctx} 个词元，这是该模型训练时支持的最大长度。</translation>
    </message>
    <message>
        <source>about {tps} tokens/s, estimated</source>
        <translation>估计约每秒 {tps} 个词元</translation>
    </message>
    <message>
        <source>under 1 token/s, estimated</source>
        <translation>估计每秒不到 1 个词元</translation>
    </message>
    <message>
        <source>Runs entirely on {gpus} ({used} of {budget} usable with a {ctx} context), {speed}; {quality} with room to spare.</source>
        <translation>完全在 {gpus} 上运行（{ctx} 上下文占用 {used} / 可用 {budget}），{speed}；{quality}，并留有余量。</translation>
    </message>
    <message>
        <source>{quant} is below the usual Q4_K_M floor, the most of this model that fits</source>
        <translation>{quant} 低于通常的 Q4_K_M 质量底线，是这个模型能放下的最好版本</translation>
    </message>
    <message>
        <source>{plan} About {tps} tokens/s, estimated.</source>
        <translation>{plan}估计约每秒 {tps} 个词元。</translation>
    </message>
    <message>
        <source>{quant} is the best quality that fits</source>
        <translation>{quant} 是能放下的最高质量版本</translation>
    </message>
    <message>
        <source>{k} of {n} layers on {gpus} ({gpu}), the rest in RAM ({ram}), {speed}; {quality}</source>
        <translation>{n} 层中的 {k} 层放在 {gpus}（{gpu}），其余在内存中（{ram}），{speed}；{quality}</translation>
    </message>
    <message>
        <source>; slow, but nothing faster of this quality fits.</source>
        <translation>；速度较慢，但没有更快的同等质量选择。</translation>
    </message>
    <message>
        <source>.</source>
        <translation>。</translation>
    </message>
    <message>
        <source>unified memory</source>
        <translation>统一内存</translation>
    </message>
    <message>
        <source>RAM</source>
        <translation>内存</translation>
    </message>
    <message>
        <source>Runs on the processor in {where} ({ram} of {budget} usable), {speed}; {quality}</source>
        <translation>在处理器上运行，使用{where}（{ram} / 可用 {budget}），{speed}；{quality}</translation>
    </message>
    <message>
        <source>; slow, but it is what fits.</source>
        <translation>；速度较慢，但这是能放下的选择。</translation>
    </message>
</context>
<context>
    <name>Hardware</name>
    <message>
        <source>Processor</source>
        <translation>处理器</translation>
    </message>
    <message>
        <source>Memory (RAM)</source>
        <translation>内存</translation>
    </message>
    <message>
        <source>Graphics card</source>
        <translation>显卡</translation>
    </message>
    <message>
        <source>{name}, {cores} cores ({threads} threads)</source>
        <translation>{name}，{cores} 核（{threads} 线程）</translation>
    </message>
    <message>
        <source>Speed-ups llama.cpp uses on it: {flags}</source>
        <translation>llama.cpp 在它上面使用的加速指令：{flags}</translation>
    </message>
    <message>
        <source>{total} in all</source>
        <translation>共 {total}</translation>
    </message>
    <message>
        <source>, {free} free right now</source>
        <translation>，当前空闲 {free}</translation>
    </message>
    <message>
        <source>; a model may use up to {usable} (the rest stays with the system and other programs)</source>
        <translation>；模型最多可用 {usable}（其余留给系统和其他程序）</translation>
    </message>
    <message>
        <source>None that r1desk can use was found. Models run on the processor and in RAM: this works, just more slowly than on a graphics card.</source>
        <translation>没有找到 r1desk 能使用的显卡。模型将在处理器和内存中运行：可以正常使用，只是比在显卡上慢。</translation>
    </message>
    <message>
        <source>shares the {total} of RAM; up to {usable} of it can hold a model</source>
        <translation>与系统共享 {total} 内存，其中最多 {usable} 可用于模型</translation>
    </message>
    <message>
        <source>{total} of video memory, {free} free</source>
        <translation>显存 {total}，空闲 {free}</translation>
    </message>
    <message>
        <source>; a model may use up to {usable}</source>
        <translation>；模型最多可用 {usable}</translation>
    </message>
    <message>
        <source>driver {version}</source>
        <translation>驱动 {version}</translation>
    </message>
    <message>
        <source>CUDA {version}</source>
        <translation>CUDA {version}</translation>
    </message>
    <message>
        <source>compute capability {version}</source>
        <translation>计算能力 {version}</translation>
    </message>
    <message>
        <source>r1desk can run models on it.</source>
        <translation>r1desk 可以在它上面运行模型。</translation>
    </message>
    <message>
        <source>Found, but this build of llama.cpp cannot use it (see the note below).</source>
        <translation>已找到，但当前版本的 llama.cpp 无法使用它（见下方说明）。</translation>
    </message>
    <message>
        <source>Can use: {backends}.</source>
        <translation>可以使用：{backends}。</translation>
    </message>
    <message>
        <source>This build runs on the processor only ({backends}).</source>
        <translation>当前版本只能在处理器上运行（{backends}）。</translation>
    </message>
    <message>
        <source>llama-cpp-python {version}.</source>
        <translation>llama-cpp-python {version}。</translation>
    </message>
    <message>
        <source>llama.cpp</source>
        <translation>llama.cpp</translation>
    </message>
    <message>
        <source>Note</source>
        <translation>说明</translation>
    </message>
</context>
<context>
    <name>HardwarePanel</name>
    <message>
        <source>The hardware could not be read: {error}</source>
        <translation>无法读取硬件信息：{error}</translation>
    </message>
    <message>
        <source>This computer</source>
        <translation>这台电脑</translation>
    </message>
    <message>
        <source>What this computer can run</source>
        <translation>这台电脑能运行什么</translation>
    </message>
    <message>
        <source>r1desk looked at the processor, the memory and the graphics cards, and at what its copy of llama.cpp can use.</source>
        <translation>r1desk 查看了处理器、内存和显卡，以及它自带的 llama.cpp 能使用哪些硬件。</translation>
    </message>
    <message>
        <source>Close</source>
        <translation>关闭</translation>
    </message>
    <message>
        <source>Looking at this computer…</source>
        <translation>正在查看这台电脑…</translation>
    </message>
</context>
<context>
    <name>LocalModelRow</name>
    <message>
        <source>downloaded</source>
        <translation>已下载</translation>
    </message>
    <message>
        <source>Hugging Face cache</source>
        <translation>Hugging Face 缓存</translation>
    </message>
    <message>
        <source>LM Studio</source>
        <translation>LM Studio</translation>
    </message>
    <message>
        <source>Ollama</source>
        <translation>Ollama</translation>
    </message>
    <message>
        <source>made by r1desk</source>
        <translation>由 r1desk 生成</translation>
    </message>
    <message>
        <source>the file is missing</source>
        <translation>文件不见了</translation>
    </message>
    <message>
        <source>the file is damaged</source>
        <translation>文件已损坏</translation>
    </message>
    <message>
        <source>Loaded</source>
        <translation>已加载</translation>
    </message>
    <message>
        <source>Load</source>
        <translation>加载</translation>
    </message>
</context>
<context>
    <name>Main</name>
    <message>
        <source>r1desk cannot start</source>
        <translation>r1desk 无法启动</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <source>Stop the reply being written before switching models.</source>
        <translation>请先停止正在生成的回复，再切换模型。</translation>
    </message>
    <message>
        <source>The model could not be loaded: {error}</source>
        <translation>无法加载模型：{error}</translation>
    </message>
    <message>
        <source>Choose another model</source>
        <translation>选择其他模型</translation>
    </message>
    <message>
        <source>Loading {model}… you can type while you wait.</source>
        <translation>正在加载 {model}…等待时可以先输入。</translation>
    </message>
    <message>
        <source>No model is loaded. Choose or download a model to start chatting.</source>
        <translation>还没有加载模型。请选择或下载一个模型，然后开始聊天。</translation>
    </message>
    <message>
        <source>System prompt</source>
        <translation>系统提示词</translation>
    </message>
    <message>
        <source>Instructions the model gets before this conversation (empty: none):</source>
        <translation>模型在这个对话之前收到的指示（留空表示没有）：</translation>
    </message>
    <message>
        <source>Conversation</source>
        <translation>对话</translation>
    </message>
    <message>
        <source>Export the conversation</source>
        <translation>导出对话</translation>
    </message>
    <message>
        <source>Markdown (*.md);;JSON (*.json);;Fine-tuning data, chat messages (*.jsonl)</source>
        <translation>Markdown (*.md);;JSON (*.json);;微调数据，对话消息格式 (*.jsonl)</translation>
    </message>
    <message>
        <source>The conversation could not be saved to {path}: {error}</source>
        <translation>无法将对话保存到 {path}：{error}</translation>
    </message>
    <message>
        <source>Saved {n} finished replies as fine-tuning data to {path}.</source>
        <translation>已把 {n} 条完成的回复作为微调数据保存到 {path}。</translation>
    </message>
    <message>
        <source>Saved the conversation to {path}.</source>
        <translation>已将对话保存到 {path}。</translation>
    </message>
    <message>
        <source>This message is {n} tokens; with the conversation, {total} of the {ctx} the context holds.</source>
        <translation>这条消息有 {n} 个词元；连同对话，共 {total} 个，上下文最多容纳 {ctx} 个。</translation>
    </message>
    <message>
        <source>Older turns will be left out so that it fits.</source>
        <translation>较早的对话轮次会被省略，以便放得下。</translation>
    </message>
    <message>
        <source>It fits, but leaves less room for the answer than the reply limit.</source>
        <translation>放得下，但留给回答的空间少于回复上限。</translation>
    </message>
    <message>
        <source>It is too long to send: shorten it, or raise the context length in Settings (this model was trained for {train} tokens).</source>
        <translation>消息太长，无法发送：请缩短它，或在“设置”中调大上下文长度（这个模型训练时支持 {train} 个词元）。</translation>
    </message>
    <message>
        <source>It is too long to send: shorten it (this is the longest context the model was trained for).</source>
        <translation>消息太长，无法发送：请缩短它（这已经是模型训练时支持的最长上下文）。</translation>
    </message>
    <message>
        <source>Open a GGUF model</source>
        <translation>打开 GGUF 模型</translation>
    </message>
    <message>
        <source>GGUF models (*.gguf)</source>
        <translation>GGUF 模型 (*.gguf)</translation>
    </message>
    <message>
        <source>The new data folder is used from the next start.</source>
        <translation>新的数据文件夹将在下次启动时生效。</translation>
    </message>
    <message>
        <source>r1desk</source>
        <translation>r1desk</translation>
    </message>
    <message>
        <source>Loading {model}…</source>
        <translation>正在加载 {model}…</translation>
    </message>
    <message>
        <source>Choose a model</source>
        <translation>选择模型</translation>
    </message>
    <message>
        <source>Models on this computer and recommended downloads</source>
        <translation>这台电脑上的模型和推荐下载</translation>
    </message>
    <message>
        <source>Adapters: fine-tunes applied on top of the model</source>
        <translation>适配器：叠加在模型之上的微调</translation>
    </message>
    <message>
        <source>What this computer can run</source>
        <translation>这台电脑能运行什么</translation>
    </message>
    <message>
        <source>Settings (Ctrl+,)</source>
        <translation>设置 (Ctrl+,)</translation>
    </message>
    <message>
        <source>Close</source>
        <translation>关闭</translation>
    </message>
</context>
<context>
    <name>MemoryPicture</name>
    <message>
        <source>{device}: weights {w}, context {kv}, working memory {o}; has {cap}</source>
        <translation>{device}：权重 {w}，上下文 {kv}，工作内存 {o}；共有 {cap}</translation>
    </message>
    <message>
        <source>RAM</source>
        <translation>内存</translation>
    </message>
    <message>
        <source>weights</source>
        <translation>权重</translation>
    </message>
    <message>
        <source>context</source>
        <translation>上下文</translation>
    </message>
    <message>
        <source>working memory</source>
        <translation>工作内存</translation>
    </message>
    <message>
        <source>limit r1desk keeps to</source>
        <translation>r1desk 的使用上限</translation>
    </message>
</context>
<context>
    <name>MessageWidget</name>
    <message>
        <source>You</source>
        <translation>你</translation>
    </message>
    <message>
        <source>Assistant</source>
        <translation>助手</translation>
    </message>
    <message>
        <source>Copy message</source>
        <translation>复制消息</translation>
    </message>
    <message>
        <source>Regenerate this reply (this one is kept: flip back with ‹ ›)</source>
        <translation>重新生成这条回复（这条会保留：用 ‹ › 切换回来）</translation>
    </message>
    <message>
        <source>The earlier reply</source>
        <translation>较早的回复</translation>
    </message>
    <message>
        <source>The later reply</source>
        <translation>较新的回复</translation>
    </message>
    <message>
        <source>Edit and send again</source>
        <translation>编辑后重新发送</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
    <message>
        <source>Send</source>
        <translation>发送</translation>
    </message>
    <message>
        <source>The reply failed: {error}</source>
        <translation>回复失败：{error}</translation>
    </message>
    <message>
        <source>unknown error</source>
        <translation>未知错误</translation>
    </message>
    <message>
        <source>This reply was interrupted (the app was closed while it was written).</source>
        <translation>这条回复被中断了（生成过程中应用被关闭）。</translation>
    </message>
    <message>
        <source>Reading the prompt… {done} / {total} tokens</source>
        <translation>正在读取提示… {done} / {total} 个词元</translation>
    </message>
</context>
<context>
    <name>ModelPicker</name>
    <message>
        <source>{n} models on this computer.</source>
        <translation>这台电脑上有 {n} 个模型。</translation>
    </message>
    <message>
        <source>No models yet. Download one from the Download tab, look for models other apps (LM Studio, Ollama, Hugging Face) already downloaded, or open a GGUF file.</source>
        <translation>还没有模型。可以在“下载”页下载一个，查找其他应用（LM Studio、Ollama、Hugging Face）已经下载的模型，或者打开一个 GGUF 文件。</translation>
    </message>
    <message>
        <source>A model is loading already.</source>
        <translation>已经有一个模型正在加载。</translation>
    </message>
    <message>
        <source>Looking for GGUF models on this computer…</source>
        <translation>正在这台电脑上查找 GGUF 模型…</translation>
    </message>
    <message>
        <source>Look for GGUF models in a folder</source>
        <translation>在文件夹中查找 GGUF 模型</translation>
    </message>
    <message>
        <source>r1desk&apos;s models folder</source>
        <translation>r1desk 的模型文件夹</translation>
    </message>
    <message>
        <source>the Hugging Face cache</source>
        <translation>Hugging Face 缓存</translation>
    </message>
    <message>
        <source>LM Studio</source>
        <translation>LM Studio</translation>
    </message>
    <message>
        <source>Ollama</source>
        <translation>Ollama</translation>
    </message>
    <message>
        <source>the folder you chose</source>
        <translation>你选择的文件夹</translation>
    </message>
    <message>
        <source>No new models found.</source>
        <translation>没有找到新模型。</translation>
    </message>
    <message>
        <source>1 new model found.</source>
        <translation>找到 1 个新模型。</translation>
    </message>
    <message>
        <source>{n} new models found.</source>
        <translation>找到 {n} 个新模型。</translation>
    </message>
    <message>
        <source>Looked in: {folders}.</source>
        <translation>查找了：{folders}。</translation>
    </message>
    <message>
        <source>None of the folders other apps use exist on this computer.</source>
        <translation>这台电脑上没有其他应用使用的模型文件夹。</translation>
    </message>
    <message>
        <source>{n} listed model(s) are missing: their files were moved or deleted.</source>
        <translation>列表中有 {n} 个模型缺失：它们的文件已被移动或删除。</translation>
    </message>
    <message>
        <source>{n} file(s) could not be used.</source>
        <translation>有 {n} 个文件无法使用。</translation>
    </message>
    <message>
        <source>Recommendations are not available: {error}</source>
        <translation>无法提供推荐：{error}</translation>
    </message>
    <message>
        <source>The download failed: {error}</source>
        <translation>下载失败：{error}</translation>
    </message>
    <message>
        <source>Looking at this computer…</source>
        <translation>正在查看这台电脑…</translation>
    </message>
    <message>
        <source>This computer: {ram} of RAM, graphics: {gpu}.</source>
        <translation>这台电脑：内存 {ram}，显卡：{gpu}。</translation>
    </message>
    <message>
        <source>This computer: {ram} of RAM, no graphics card r1desk can use, so models run on the processor.</source>
        <translation>这台电脑：内存 {ram}，没有 r1desk 能使用的显卡，模型将在处理器上运行。</translation>
    </message>
    <message>
        <source>{machine} A model may use up to {usable} of the RAM; the rest stays with the system and other programs.</source>
        <translation>{machine}模型最多可使用其中 {usable} 内存，其余留给系统和其他程序。</translation>
    </message>
    <message>
        <source>Models</source>
        <translation>模型</translation>
    </message>
    <message>
        <source>Choose a model</source>
        <translation>选择模型</translation>
    </message>
    <message>
        <source>On this computer</source>
        <translation>这台电脑上</translation>
    </message>
    <message>
        <source>Download</source>
        <translation>下载</translation>
    </message>
    <message>
        <source>Find models from other apps</source>
        <translation>查找其他应用的模型</translation>
    </message>
    <message>
        <source>Open a GGUF file…</source>
        <translation>打开 GGUF 文件…</translation>
    </message>
    <message>
        <source>Look in a folder…</source>
        <translation>在文件夹中查找…</translation>
    </message>
    <message>
        <source>Or type a model repository, e.g. bartowski/Qwen_Qwen3-4B-GGUF</source>
        <translation>或输入模型仓库名，例如 bartowski/Qwen_Qwen3-4B-GGUF</translation>
    </message>
</context>
<context>
    <name>OfferCard</name>
    <message>
        <source>Downloaded and checked. Loading it…</source>
        <translation>已下载并校验，正在加载…</translation>
    </message>
    <message>
        <source>The download failed: {error}</source>
        <translation>下载失败：{error}</translation>
    </message>
    <message>
        <source>Download stopped. Click Download to continue where it stopped.</source>
        <translation>下载已停止。点击“下载”可从停止处继续。</translation>
    </message>
    <message>
        <source>about {size}</source>
        <translation>约 {size}</translation>
    </message>
    <message>
        <source>thinks before answering</source>
        <translation>先思考再回答</translation>
    </message>
    <message>
        <source>From {repo}</source>
        <translation>来自 {repo}</translation>
    </message>
    <message>
        <source>Recommended</source>
        <translation>推荐</translation>
    </message>
    <message>
        <source>Download</source>
        <translation>下载</translation>
    </message>
    <message>
        <source>Download {name} ({size}) and load it</source>
        <translation>下载 {name}（{size}）并加载</translation>
    </message>
</context>
<context>
    <name>ServerPanel</name>
    <message>
        <source>Open Settings</source>
        <translation>打开设置</translation>
    </message>
    <message>
        <source>Requests: {n}</source>
        <translation>请求：{n}</translation>
    </message>
    <message>
        <source>API requests being answered or waiting for the model now; {total} since the server started</source>
        <translation>正在回答或等待模型的 API 请求数；服务器启动以来共 {total} 个</translation>
    </message>
    <message>
        <source>The API server cannot start: port {port} is in use by another program. Choose another port in Settings › API server.</source>
        <translation>API 服务器无法启动：端口 {port} 已被其他程序占用。请在“设置 › API 服务器”中选择其他端口。</translation>
    </message>
    <message>
        <source>The API server cannot start: port {port} is reserved or needs administrator rights. Choose a port above 1024 in Settings › API server.</source>
        <translation>API 服务器无法启动：端口 {port} 被系统保留或需要管理员权限。请在“设置 › API 服务器”中选择 1024 以上的端口。</translation>
    </message>
    <message>
        <source>The API server cannot start: {host} is not an address of this computer. Choose where to listen in Settings › API server.</source>
        <translation>API 服务器无法启动：{host} 不是这台电脑的地址。请在“设置 › API 服务器”中选择监听的位置。</translation>
    </message>
    <message>
        <source>The API server cannot listen on the network without an API key. Create one in Settings › API server.</source>
        <translation>没有 API 密钥时，API 服务器不能在网络上监听。请在“设置 › API 服务器”中创建一个。</translation>
    </message>
    <message>
        <source>The API server cannot start: {error}</source>
        <translation>API 服务器无法启动：{error}</translation>
    </message>
    <message>
        <source>Stopping…</source>
        <translation>正在停止…</translation>
    </message>
    <message>
        <source>Starting…</source>
        <translation>正在启动…</translation>
    </message>
    <message>
        <source>Serve API</source>
        <translation>提供 API</translation>
    </message>
    <message>
        <source>Let other programs use the loaded model through an OpenAI-compatible API. Conversations through the API are not saved in the history.</source>
        <translation>让其他程序通过兼容 OpenAI 的 API 使用已加载的模型。通过 API 进行的对话不会保存到聊天记录中。</translation>
    </message>
    <message>
        <source>Serving at {address}</source>
        <translation>正在 {address} 提供服务</translation>
    </message>
    <message>
        <source>Key {masked}</source>
        <translation>密钥 {masked}</translation>
    </message>
    <message>
        <source>No key</source>
        <translation>无密钥</translation>
    </message>
    <message>
        <source>Clients send it as: Authorization: Bearer KEY</source>
        <translation>客户端这样发送它：Authorization: Bearer KEY</translation>
    </message>
    <message>
        <source>Only programs on this computer can connect</source>
        <translation>只有这台电脑上的程序可以连接</translation>
    </message>
    <message>
        <source>The base URL for OpenAI clients</source>
        <translation>OpenAI 客户端使用的基础 URL</translation>
    </message>
    <message>
        <source>Copy the address</source>
        <translation>复制地址</translation>
    </message>
    <message>
        <source>Copy the API key</source>
        <translation>复制 API 密钥</translation>
    </message>
    <message>
        <source>Serving</source>
        <translation>正在提供服务</translation>
    </message>
</context>
<context>
    <name>SettingsDialog</name>
    <message>
        <source>Load a model to see how much memory these settings need.</source>
        <translation>加载一个模型后，即可看到这些设置需要多少内存。</translation>
    </message>
    <message>
        <source>With {ctx} tokens of context: {plan}</source>
        <translation>上下文为 {ctx} 个词元时：{plan}</translation>
    </message>
    <message>
        <source>Web pages are given as their origin, such as https://example.com or http://localhost:3000 (no path), with commas between them.</source>
        <translation>网页请写成来源地址，例如 https://example.com 或 http://localhost:3000（不带路径），多个之间用逗号分隔。</translation>
    </message>
    <message>
        <source>r1desk keeps what the model has read of each recent conversation, so going back to one, or starting r1desk again, answers at once instead of reading the whole conversation again. Now: {size} for {n} conversation(s). 0 keeps nothing on disk.</source>
        <translation>r1desk 会保存模型对最近每个对话已读过的内容，回到某个对话或重新启动 r1desk 时可以立即回答，而不必把整个对话重读一遍。当前：{n} 个对话，共 {size}。设为 0 则不在磁盘上保存。</translation>
    </message>
    <message>
        <source>Choose the data folder</source>
        <translation>选择数据文件夹</translation>
    </message>
    <message>
        <source>r1desk will use this folder the next time it starts. Move your files there yourself if you want to keep them.</source>
        <translation>r1desk 将在下次启动时使用这个文件夹。如需保留现有文件，请自行把它们移过去。</translation>
    </message>
    <message>
        <source>Settings</source>
        <translation>设置</translation>
    </message>
    <message>
        <source>Model</source>
        <translation>模型</translation>
    </message>
    <message>
        <source>Sampling</source>
        <translation>采样</translation>
    </message>
    <message>
        <source>Chat</source>
        <translation>对话</translation>
    </message>
    <message>
        <source>Downloads</source>
        <translation>下载</translation>
    </message>
    <message>
        <source>General</source>
        <translation>常规</translation>
    </message>
    <message>
        <source>Context length</source>
        <translation>上下文长度</translation>
    </message>
    <message>
        <source>Automatic</source>
        <translation>自动</translation>
    </message>
    <message>
        <source> tokens</source>
        <translation> 个词元</translation>
    </message>
    <message>
        <source>GPU layers</source>
        <translation>GPU 层数</translation>
    </message>
    <message>
        <source>Number:</source>
        <translation>数量：</translation>
    </message>
    <message>
        <source>This computer has no graphics card r1desk can use: every layer runs on the processor, so there is nothing to choose here.</source>
        <translation>这台电脑没有 r1desk 能使用的显卡：所有层都在处理器上运行，这里无需选择。</translation>
    </message>
    <message>
        <source>Context length and GPU layers take effect when the model is loaded again (r1desk reloads it for you).</source>
        <translation>上下文长度和 GPU 层数在重新加载模型后生效（r1desk 会自动重新加载）。</translation>
    </message>
    <message>
        <source>Temperature</source>
        <translation>温度</translation>
    </message>
    <message>
        <source>Top P</source>
        <translation>Top P</translation>
    </message>
    <message>
        <source>Top K</source>
        <translation>Top K</translation>
    </message>
    <message>
        <source>Min P</source>
        <translation>Min P</translation>
    </message>
    <message>
        <source>Repeat penalty</source>
        <translation>重复惩罚</translation>
    </message>
    <message>
        <source>Longest reply</source>
        <translation>最长回复</translation>
    </message>
    <message>
        <source>Seed</source>
        <translation>随机种子</translation>
    </message>
    <message>
        <source>Reasoning budget</source>
        <translation>思考预算</translation>
    </message>
    <message>
        <source>Reasoning time</source>
        <translation>思考时间</translation>
    </message>
    <message>
        <source>Random</source>
        <translation>随机</translation>
    </message>
    <message>
        <source>No limit</source>
        <translation>不限制</translation>
    </message>
    <message>
        <source>Unlimited</source>
        <translation>不限</translation>
    </message>
    <message>
        <source> seconds</source>
        <translation> 秒</translation>
    </message>
    <message>
        <source>Model default</source>
        <translation>模型默认</translation>
    </message>
    <message>
        <source>The longest reply counts the answer only: R1&apos;s thinking is not counted, and the context holds both. &quot;No limit&quot; (0) lets a reply run until the context is full.</source>
        <translation>最长回复只计算回答部分：R1 的思考不计入，但两者都占用上下文。“不限制”（0）会让回复一直生成到上下文用满为止。</translation>
    </message>
    <message>
        <source>&quot;Model default&quot; uses what the model recommends (for DeepSeek-R1: temperature 0.6, top P 0.95). The reasoning budget and reasoning time limit how long R1 may think before it must answer: when either is reached, the thinking is closed and the model answers.</source>
        <translation>“模型默认”表示使用模型推荐的值（DeepSeek-R1：温度 0.6，Top P 0.95）。思考预算和思考时间限制 R1 在必须回答之前最多能思考多久：达到其中任何一个时，思考就会结束，模型开始回答。</translation>
    </message>
    <message>
        <source>System prompt for new conversations</source>
        <translation>新对话的系统提示词</translation>
    </message>
    <message>
        <source>None: the model gets only your messages</source>
        <translation>无：模型只收到你的消息</translation>
    </message>
    <message>
        <source>Instructions the model gets before every new conversation. A conversation keeps the system prompt it started with; change it from the conversation&apos;s menu in the sidebar. DeepSeek-R1 works best without one: r1desk puts it at the start of your first message instead.</source>
        <translation>模型在每个新对话开始前收到的指示。对话会一直使用它开始时的系统提示词；要修改，请在侧边栏中该对话的菜单里更改。DeepSeek-R1 不用系统提示词效果最好：r1desk 会把它放在你的第一条消息开头。</translation>
    </message>
    <message>
        <source>Disk space for saved conversations</source>
        <translation>已保存对话的磁盘空间</translation>
    </message>
    <message>
        <source> MB</source>
        <translation> MB</translation>
    </message>
    <message>
        <source>None</source>
        <translation>不保存</translation>
    </message>
    <message>
        <source>Clear</source>
        <translation>清除</translation>
    </message>
    <message>
        <source>Download server</source>
        <translation>下载服务器</translation>
    </message>
    <message>
        <source>Hugging Face (default)</source>
        <translation>Hugging Face（默认）</translation>
    </message>
    <message>
        <source>Access token</source>
        <translation>访问令牌</translation>
    </message>
    <message>
        <source>Only for gated or private models</source>
        <translation>仅用于受限或私有模型</translation>
    </message>
    <message>
        <source>If huggingface.co is blocked where you are, choose a mirror such as hf-mirror.com.</source>
        <translation>如果你所在的地方无法访问 huggingface.co，请选择镜像，例如 hf-mirror.com。</translation>
    </message>
    <message>
        <source>Language</source>
        <translation>语言</translation>
    </message>
    <message>
        <source>Follow the system</source>
        <translation>跟随系统</translation>
    </message>
    <message>
        <source>Theme</source>
        <translation>主题</translation>
    </message>
    <message>
        <source>Light</source>
        <translation>浅色</translation>
    </message>
    <message>
        <source>Dark</source>
        <translation>深色</translation>
    </message>
    <message>
        <source>Data folder</source>
        <translation>数据文件夹</translation>
    </message>
    <message>
        <source>Change…</source>
        <translation>更改…</translation>
    </message>
    <message>
        <source>Conversations, settings and downloaded models are kept here.</source>
        <translation>对话、设置和下载的模型都保存在这里。</translation>
    </message>
    <message>
        <source>API server</source>
        <translation>API 服务器</translation>
    </message>
    <message>
        <source>Port</source>
        <translation>端口</translation>
    </message>
    <message>
        <source>Who can connect</source>
        <translation>谁可以连接</translation>
    </message>
    <message>
        <source>Programs on this computer only</source>
        <translation>仅限这台电脑上的程序</translation>
    </message>
    <message>
        <source>Other computers on the network too (the key is required)</source>
        <translation>网络上的其他电脑也可以（需要密钥）</translation>
    </message>
    <message>
        <source>Require the API key</source>
        <translation>需要 API 密钥</translation>
    </message>
    <message>
        <source>API key</source>
        <translation>API 密钥</translation>
    </message>
    <message>
        <source>No key</source>
        <translation>无密钥</translation>
    </message>
    <message>
        <source>Show</source>
        <translation>显示</translation>
    </message>
    <message>
        <source>Copy</source>
        <translation>复制</translation>
    </message>
    <message>
        <source>New key</source>
        <translation>新密钥</translation>
    </message>
    <message>
        <source>Web pages allowed</source>
        <translation>允许的网页</translation>
    </message>
    <message>
        <source>None (for example: http://localhost:3000)</source>
        <translation>无（例如：http://localhost:3000）</translation>
    </message>
    <message>
        <source>Turn the server on with Serve API at the top of the window, which then shows its address. It serves the model loaded in r1desk through OpenAI&apos;s API: requests wait their turn with your own chats, and conversations through the API are not saved in the history. Clients send the key as &quot;Authorization: Bearer KEY&quot;. Web pages in a browser may call the API only from the addresses listed here.</source>
        <translation>用窗口顶部的“提供 API”打开服务器，旁边会显示它的地址。它通过 OpenAI 的 API 提供 r1desk 中已加载的模型：请求与你自己的聊天一起排队，通过 API 进行的对话不会保存到聊天记录中。客户端以“Authorization: Bearer KEY”发送密钥。浏览器中的网页只有来自这里列出的地址时才能调用 API。</translation>
    </message>
    <message>
        <source>OK</source>
        <translation>确定</translation>
    </message>
    <message>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
    <message>
        <source>Apply</source>
        <translation>应用</translation>
    </message>
</context>
<context>
    <name>Sidebar</name>
    <message>
        <source>New conversation</source>
        <translation>新对话</translation>
    </message>
    <message>
        <source>No conversations yet</source>
        <translation>还没有对话</translation>
    </message>
    <message>
        <source>Nothing found</source>
        <translation>没有找到</translation>
    </message>
    <message>
        <source>More than {n} messages found</source>
        <translation>找到超过 {n} 条消息</translation>
    </message>
    <message>
        <source>1 message found</source>
        <translation>找到 1 条消息</translation>
    </message>
    <message>
        <source>{n} messages found</source>
        <translation>找到 {n} 条消息</translation>
    </message>
    <message>
        <source>in the thinking</source>
        <translation>在思考过程中</translation>
    </message>
    <message>
        <source>{n} matches</source>
        <translation>{n} 处匹配</translation>
    </message>
    <message>
        <source>Today</source>
        <translation>今天</translation>
    </message>
    <message>
        <source>Yesterday</source>
        <translation>昨天</translation>
    </message>
    <message>
        <source>Previous 7 days</source>
        <translation>过去 7 天</translation>
    </message>
    <message>
        <source>Previous 30 days</source>
        <translation>过去 30 天</translation>
    </message>
    <message>
        <source>Older</source>
        <translation>更早</translation>
    </message>
    <message>
        <source>Rename</source>
        <translation>重命名</translation>
    </message>
    <message>
        <source>System prompt…</source>
        <translation>系统提示词…</translation>
    </message>
    <message>
        <source>Export…</source>
        <translation>导出…</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>删除</translation>
    </message>
    <message>
        <source>Conversation deleted.</source>
        <translation>对话已删除。</translation>
    </message>
    <message>
        <source>New chat</source>
        <translation>新对话</translation>
    </message>
    <message>
        <source>Start a new conversation (Ctrl+N)</source>
        <translation>开始新对话 (Ctrl+N)</translation>
    </message>
    <message>
        <source>Search all messages (Ctrl+F)</source>
        <translation>搜索所有消息 (Ctrl+F)</translation>
    </message>
    <message>
        <source>Undo</source>
        <translation>撤销</translation>
    </message>
</context>
<context>
    <name>SourceViewer</name>
    <message>
        <source>Page {n} of {total}</source>
        <translation>第 {n} 页，共 {total} 页</translation>
    </message>
    <message>
        <source>Open in its app</source>
        <translation>用默认程序打开</translation>
    </message>
    <message>
        <source>Open the file in the program the system uses for it</source>
        <translation>用系统为这类文件设定的程序打开</translation>
    </message>
    <message>
        <source>Source</source>
        <translation>来源</translation>
    </message>
</context>
<context>
    <name>Sources</name>
    <message>
        <source>pages {first}–{last}</source>
        <translation>第 {first}–{last} 页</translation>
    </message>
    <message>
        <source>page {n}</source>
        <translation>第 {n} 页</translation>
    </message>
    <message>
        <source>lines {first}–{last}</source>
        <translation>第 {first}–{last} 行</translation>
    </message>
    <message>
        <source>line {n}</source>
        <translation>第 {n} 行</translation>
    </message>
    <message>
        <source>Sources</source>
        <translation>来源</translation>
    </message>
    <message>
        <source>The cited passage could not be found on this page of the file as it is now; the page is the one the reply cited.</source>
        <translation>在文件当前版本的这一页上找不到所引用的段落；显示的是回答所引用的页。</translation>
    </message>
    <message>
        <source>The file has changed since the reply was written: the lines it cited are marked, the passage may have moved.</source>
        <translation>写下回答后文件已有改动：已标出所引用的行，但段落可能已移位。</translation>
    </message>
    <message>
        <source>The cited passage is no longer in this file.</source>
        <translation>所引用的段落已不在这个文件中。</translation>
    </message>
    <message>
        <source>{name} is no longer at {path}: it was moved or deleted after this reply was written.</source>
        <translation>{name} 已不在 {path}：写下这条回答后，它被移动或删除了。</translation>
    </message>
    <message>
        <source>No program on this computer opens {name}.</source>
        <translation>这台电脑上没有能打开 {name} 的程序。</translation>
    </message>
</context>
<context>
    <name>Stats</name>
    <message>
        <source>with {adapters}</source>
        <translation>使用 {adapters}</translation>
    </message>
    <message>
        <source>{n} tokens</source>
        <translation>{n} 个词元</translation>
    </message>
    <message>
        <source>{tps} tokens/s</source>
        <translation>每秒 {tps} 个词元</translation>
    </message>
    <message>
        <source>first token {seconds} s</source>
        <translation>首个词元 {seconds} 秒</translation>
    </message>
    <message>
        <source>prompt: {read} tokens read, {reused} restored from memory</source>
        <translation>提示词：读取 {read} 个词元，{reused} 个从内存恢复</translation>
    </message>
    <message>
        <source>prompt: {read} tokens read, {reused} restored from disk</source>
        <translation>提示词：读取 {read} 个词元，{reused} 个从磁盘恢复</translation>
    </message>
    <message>
        <source>prompt: {read} tokens read, {reused} reused</source>
        <translation>提示词：读取 {read} 个词元，{reused} 个复用</translation>
    </message>
    <message>
        <source>prompt: {read} tokens read</source>
        <translation>提示词：读取 {read} 个词元</translation>
    </message>
    <message>
        <source>{seconds} s in all</source>
        <translation>共 {seconds} 秒</translation>
    </message>
    <message>
        <source>{n} earlier messages left out to fit the context</source>
        <translation>为放入上下文，省略了 {n} 条较早的消息</translation>
    </message>
    <message>
        <source>stopped</source>
        <translation>已停止</translation>
    </message>
    <message>
        <source>stopped at the reply limit of {n} tokens (Longest reply, in Settings › Sampling)</source>
        <translation>已达到 {n} 个词元的回复上限而停止（可在“设置 › 采样”中修改“最长回复”）</translation>
    </message>
    <message>
        <source>cut off at the length limit</source>
        <translation>达到长度上限被截断</translation>
    </message>
</context>
<context>
    <name>StatusBar</name>
    <message>
        <source>it did not stop in time and was restarted</source>
        <translation>它没有及时停止，已重新启动</translation>
    </message>
    <message>
        <source>its chat template took too long and it was restarted</source>
        <translation>它的对话模板耗时过长，已重新启动</translation>
    </message>
    <message>
        <source>the model process stopped ({detail})</source>
        <translation>模型进程已停止（{detail}）</translation>
    </message>
    <message>
        <source>the model process stopped</source>
        <translation>模型进程已停止</translation>
    </message>
    <message>
        <source>Reloading {model}: {why}…</source>
        <translation>正在重新加载 {model}：{why}…</translation>
    </message>
    <message>
        <source>Loading {model}…</source>
        <translation>正在加载 {model}…</translation>
    </message>
    <message>
        <source>Waiting for the model: {n} request(s) ahead</source>
        <translation>正在等待模型：前面还有 {n} 个请求</translation>
    </message>
    <message>
        <source>Model: {model}</source>
        <translation>模型：{model}</translation>
    </message>
    <message>
        <source>No model loaded</source>
        <translation>未加载模型</translation>
    </message>
    <message>
        <source>Context {used} / {total}</source>
        <translation>上下文 {used} / {total}</translation>
    </message>
    <message>
        <source>Tokens of the conversation the model holds in its context</source>
        <translation>模型上下文中保存的对话词元数</translation>
    </message>
    <message>
        <source>{tps} tokens/s</source>
        <translation>每秒 {tps} 个词元</translation>
    </message>
    <message>
        <source>Memory {size}</source>
        <translation>内存 {size}</translation>
    </message>
    <message>
        <source>Memory used by r1desk and its model process</source>
        <translation>r1desk 及其模型进程占用的内存</translation>
    </message>
</context>
<context>
    <name>ThinkingSection</name>
    <message>
        <source>Thinking… {seconds} s</source>
        <translation>思考中… {seconds} 秒</translation>
    </message>
    <message>
        <source>Thought for {seconds} s</source>
        <translation>思考了 {seconds} 秒</translation>
    </message>
    <message>
        <source>Thinking</source>
        <translation>思考过程</translation>
    </message>
    <message>
        <source>Show or hide the model&apos;s reasoning</source>
        <translation>显示或隐藏模型的思考过程</translation>
    </message>
</context>
</TS>
